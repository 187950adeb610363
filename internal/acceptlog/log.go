package acceptlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Position is a place in the log: a segment and a byte offset in it.
type Position struct {
	Segment uint64 `json:"segment"`
	Offset  int64  `json:"offset"`
}

// Before reports whether p comes before q.
func (p Position) Before(q Position) bool {
	return p.Segment < q.Segment || (p.Segment == q.Segment && p.Offset < q.Offset)
}

func (p Position) String() string { return fmt.Sprintf("%d:%d", p.Segment, p.Offset) }

// Record is one appended record and the position just after it (where
// reading resumes once it is applied).
type Record struct {
	Data []byte
	End  Position
}

// Options configure a Log.
type Options struct {
	// SegmentBytes is the size after which a new segment file starts
	// (default 64 MiB).
	SegmentBytes int64
	// MaxBacklog bounds the bytes appended but not yet released by the
	// applier (default 1 GiB): beyond it Append refuses with ErrFull, so a
	// store that cannot keep up slows clients down (503, retried) instead of
	// filling the disk.
	MaxBacklog int64
}

// MaxRecordBytes bounds one record; larger lengths in a frame mean a
// damaged file.
const MaxRecordBytes = 32 << 20

const frameHeader = 8 // length, CRC-32C

var (
	// ErrFull: the backlog is at Options.MaxBacklog.
	ErrFull = errors.New("acceptlog: the backlog of unapplied records is full")
	// ErrClosed: the log was closed.
	ErrClosed = errors.New("acceptlog: closed")
	// ErrTooLarge: the record exceeds MaxRecordBytes.
	ErrTooLarge = errors.New("acceptlog: record too large")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Log is an open accept log. Append is safe for concurrent use; Read and
// Release are meant for one applier.
type Log struct {
	dir  string
	opts Options
	lock *os.File // holds the directory's lock

	// Appenders queue here; one of them at a time leads and writes groups.
	qmu     sync.Mutex
	pending []*appendRequest
	leading bool

	// The open segment, touched only under wmu (by the leader, and by Close).
	wmu  sync.Mutex
	f    *os.File
	seg  uint64
	size int64

	mu      sync.Mutex
	durable Position         // everything before it is synced
	sizes   map[uint64]int64 // synced size of each live segment
	segs    []uint64         // live segments, ascending
	applied Position         // released by the applier
	closed  bool
	notify  chan struct{} // signalled after each sync
}

type appendRequest struct {
	data []byte
	err  error
	done chan struct{}
}

// Open opens (creating if needed) the log in dir, cutting off a torn
// record at the end of the newest segment.
func Open(dir string, opts Options) (*Log, error) {
	if opts.SegmentBytes <= 0 {
		opts.SegmentBytes = 64 << 20
	}
	if opts.MaxBacklog <= 0 {
		opts.MaxBacklog = 1 << 30
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("acceptlog: %w", err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, fmt.Errorf("acceptlog: %w", err)
	}
	l, err := open(dir, opts)
	if err != nil {
		lock.Close()
		return nil, err
	}
	l.lock = lock
	return l, nil
}

func open(dir string, opts Options) (*Log, error) {
	l := &Log{dir: dir, opts: opts, sizes: map[uint64]int64{}, notify: make(chan struct{}, 1)}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("acceptlog: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".log") {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSuffix(name, ".log"), 10, 64)
		if err != nil || n == 0 {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return nil, fmt.Errorf("acceptlog: %w", err)
		}
		l.segs = append(l.segs, n)
		l.sizes[n] = info.Size()
	}
	slices.Sort(l.segs)
	if len(l.segs) == 0 {
		if err := l.create(1); err != nil {
			return nil, err
		}
	} else {
		last := l.segs[len(l.segs)-1]
		f, err := os.OpenFile(l.path(last), os.O_RDWR, 0)
		if err != nil {
			return nil, fmt.Errorf("acceptlog: %w", err)
		}
		valid, err := validPrefix(f)
		if err == nil && valid < l.sizes[last] {
			// A write that was cut short: never synced, never acknowledged.
			if err = f.Truncate(valid); err == nil {
				err = f.Sync()
			}
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("acceptlog: recovering %s: %w", l.path(last), err)
		}
		l.f, l.seg, l.size = f, last, valid
		l.sizes[last] = valid
	}
	l.durable = Position{l.seg, l.size}
	l.applied = Position{Segment: l.segs[0]}
	return l, nil
}

func (l *Log) path(seg uint64) string {
	return filepath.Join(l.dir, fmt.Sprintf("%016d.log", seg))
}

// create starts segment seg and makes its name durable.
func (l *Log) create(seg uint64) error {
	f, err := os.OpenFile(l.path(seg), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("acceptlog: %w", err)
	}
	if err := syncDir(l.dir); err != nil {
		f.Close()
		os.Remove(l.path(seg))
		return fmt.Errorf("acceptlog: %w", err)
	}
	if l.f != nil {
		l.f.Close()
	}
	l.f, l.seg, l.size = f, seg, 0
	l.mu.Lock()
	l.segs = append(l.segs, seg)
	l.sizes[seg] = 0
	l.mu.Unlock()
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// validPrefix is the length of the file's leading run of whole records
// whose checksums match.
func validPrefix(f *os.File) (int64, error) {
	info, err := f.Stat()
	if err != nil {
		return 0, err
	}
	var off int64
	var hdr [frameHeader]byte
	var buf []byte
	for {
		if info.Size()-off < frameHeader {
			return off, nil
		}
		if _, err := f.ReadAt(hdr[:], off); err != nil {
			return off, nil
		}
		n := int64(binary.LittleEndian.Uint32(hdr[0:4]))
		if n > MaxRecordBytes || off+frameHeader+n > info.Size() {
			return off, nil
		}
		buf = slices.Grow(buf[:0], int(n))[:n]
		if _, err := f.ReadAt(buf, off+frameHeader); err != nil && err != io.EOF {
			return 0, err
		}
		if crc32.Checksum(buf, castagnoli) != binary.LittleEndian.Uint32(hdr[4:8]) {
			return off, nil
		}
		off += frameHeader + n
	}
}

// Append writes a record and returns once it is synced to disk. Concurrent
// appends share one write and one sync.
func (l *Log) Append(data []byte) error {
	if len(data) > MaxRecordBytes {
		return ErrTooLarge
	}
	r := &appendRequest{data: data, done: make(chan struct{})}
	l.qmu.Lock()
	l.pending = append(l.pending, r)
	lead := !l.leading
	l.leading = true
	l.qmu.Unlock()
	if lead {
		for group := l.next(); group != nil; group = l.next() {
			l.write(group)
		}
	}
	<-r.done
	return r.err
}

// next takes every waiting append, or ends leadership when none waits.
func (l *Log) next() []*appendRequest {
	l.qmu.Lock()
	defer l.qmu.Unlock()
	group := l.pending
	l.pending = nil
	if len(group) == 0 {
		l.leading = false
	}
	return group
}

func (l *Log) write(group []*appendRequest) {
	finish := func(err error) {
		for _, r := range group {
			if r.err == nil {
				r.err = err
			}
			close(r.done)
		}
	}
	l.wmu.Lock()
	defer l.wmu.Unlock()
	l.mu.Lock()
	closed, backlog := l.closed, l.backlogLocked()
	l.mu.Unlock()
	if closed {
		finish(ErrClosed)
		return
	}
	var buf []byte
	for _, r := range group {
		if backlog+int64(len(buf)+len(r.data)) > l.opts.MaxBacklog {
			r.err = ErrFull
			continue
		}
		var hdr [frameHeader]byte
		binary.LittleEndian.PutUint32(hdr[0:4], uint32(len(r.data)))
		binary.LittleEndian.PutUint32(hdr[4:8], crc32.Checksum(r.data, castagnoli))
		buf = append(buf, hdr[:]...)
		buf = append(buf, r.data...)
	}
	if len(buf) == 0 {
		finish(nil)
		return
	}
	if l.size > 0 && l.size+int64(len(buf)) > l.opts.SegmentBytes {
		if err := l.create(l.seg + 1); err != nil {
			finish(err)
			return
		}
	}
	if _, err := l.f.WriteAt(buf, l.size); err != nil {
		// Cut what may have been written, so the next record follows the
		// last whole one.
		_ = l.f.Truncate(l.size)
		finish(fmt.Errorf("acceptlog: %w", err))
		return
	}
	if err := l.f.Sync(); err != nil {
		_ = l.f.Truncate(l.size)
		finish(fmt.Errorf("acceptlog: %w", err))
		return
	}
	l.size += int64(len(buf))
	l.mu.Lock()
	l.durable = Position{l.seg, l.size}
	l.sizes[l.seg] = l.size
	l.mu.Unlock()
	select {
	case l.notify <- struct{}{}:
	default:
	}
	finish(nil)
}

// Appended is signalled after records are synced: the applier waits on it.
func (l *Log) Appended() <-chan struct{} { return l.notify }

// End is the position after the last synced record.
func (l *Log) End() Position {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.durable
}

// Start is the position of the oldest record still kept.
func (l *Log) Start() Position {
	l.mu.Lock()
	defer l.mu.Unlock()
	return Position{Segment: l.segs[0]}
}

// Backlog is the number of bytes appended but not yet released.
func (l *Log) Backlog() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.backlogLocked()
}

func (l *Log) backlogLocked() int64 {
	var n int64
	for _, s := range l.segs {
		if s >= l.applied.Segment {
			n += l.sizes[s]
		}
	}
	return n - l.applied.Offset
}

// CorruptError reports a damaged record in synced data (bit rot, a file
// edited by hand). Reading can continue from Next: the following record
// when only the checksum failed, else the start of the following segment.
type CorruptError struct {
	At   Position
	Next Position
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("acceptlog: damaged record at %s; the rest of that segment cannot be read", e.At)
}

// Read returns the synced records from the position from on, up to about
// maxBytes of them (at least one if any), all from one segment. A from
// before the oldest live segment starts at that segment. It returns no
// records when from is at the end.
func (l *Log) Read(from Position, maxBytes int) ([]Record, error) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil, ErrClosed
	}
	segs := slices.Clone(l.segs)
	durable := l.durable
	sizes := make(map[uint64]int64, len(segs))
	for _, s := range segs {
		sizes[s] = l.sizes[s]
	}
	l.mu.Unlock()

	pos := from
	if len(segs) > 0 && pos.Segment < segs[0] {
		pos = Position{Segment: segs[0]}
	}
	for {
		end, live := sizes[pos.Segment]
		if pos.Segment == durable.Segment {
			end = durable.Offset
		}
		if live && pos.Offset < end {
			return l.readSegment(pos, end, maxBytes)
		}
		i, _ := slices.BinarySearch(segs, pos.Segment+1)
		if i >= len(segs) || !pos.Before(durable) {
			return nil, nil
		}
		pos = Position{Segment: segs[i]}
	}
}

func (l *Log) readSegment(pos Position, end int64, maxBytes int) ([]Record, error) {
	f, err := os.Open(l.path(pos.Segment))
	if err != nil {
		return nil, fmt.Errorf("acceptlog: %w", err)
	}
	defer f.Close()
	// A record whose checksum fails but whose length fits is skipped alone;
	// a length that cannot be right loses the rest of the segment.
	corrupt := func(at, next int64) error {
		e := &CorruptError{At: Position{pos.Segment, at}, Next: Position{pos.Segment, next}}
		if next < 0 {
			e.Next = Position{Segment: pos.Segment + 1}
			l.rotateFrom(pos.Segment)
		}
		return e
	}
	want := min(end-pos.Offset, int64(max(maxBytes, frameHeader)))
	buf := make([]byte, want)
	if _, err := f.ReadAt(buf, pos.Offset); err != nil && err != io.EOF {
		return nil, fmt.Errorf("acceptlog: %w", err)
	}
	var out []Record
	off := pos.Offset
	for len(buf) >= frameHeader {
		n := int64(binary.LittleEndian.Uint32(buf[0:4]))
		if n > MaxRecordBytes || off+frameHeader+n > end {
			return out, corrupt(off, -1)
		}
		if int64(len(buf)) < frameHeader+n {
			if len(out) > 0 {
				break // the next call starts with it
			}
			// One record larger than maxBytes: read it alone.
			buf = make([]byte, frameHeader+n)
			if _, err := f.ReadAt(buf, off); err != nil && err != io.EOF {
				return nil, fmt.Errorf("acceptlog: %w", err)
			}
		}
		data := buf[frameHeader : frameHeader+n]
		if crc32.Checksum(data, castagnoli) != binary.LittleEndian.Uint32(buf[4:8]) {
			return out, corrupt(off, off+frameHeader+n)
		}
		off += frameHeader + n
		out = append(out, Record{Data: data, End: Position{pos.Segment, off}})
		buf = buf[frameHeader+n:]
	}
	return out, nil
}

// rotateFrom starts a new segment if seg is still the one being written:
// after damage that makes the rest of seg unreadable, later appends must
// not land behind it.
func (l *Log) rotateFrom(seg uint64) {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if l.seg == seg && l.f != nil {
		_ = l.create(seg + 1)
	}
}

// Release tells the log that everything before upTo is applied: segments
// wholly before it are deleted and the backlog shrinks.
func (l *Log) Release(upTo Position) error {
	l.mu.Lock()
	if l.applied.Before(upTo) {
		l.applied = upTo
	}
	var drop []uint64
	for len(l.segs) > 1 && l.segs[0] < l.applied.Segment {
		drop = append(drop, l.segs[0])
		delete(l.sizes, l.segs[0])
		l.segs = l.segs[1:]
	}
	l.mu.Unlock()
	var errs []error
	for _, s := range drop {
		if err := os.Remove(l.path(s)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Close closes the log; appends after it fail with ErrClosed. Appends in
// flight finish first.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	// A group being written finishes first; later ones see closed.
	l.wmu.Lock()
	defer l.wmu.Unlock()
	var errs []error
	if l.f != nil {
		errs = append(errs, l.f.Close())
	}
	if l.lock != nil {
		errs = append(errs, l.lock.Close())
	}
	return errors.Join(errs...)
}
