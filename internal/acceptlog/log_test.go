package acceptlog

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

func readAll(t *testing.T, l *Log, from Position) ([]string, Position) {
	t.Helper()
	var out []string
	for {
		recs, err := l.Read(from, 100)
		require.NoError(t, err)
		if len(recs) == 0 {
			return out, from
		}
		for _, r := range recs {
			out = append(out, string(r.Data))
			from = r.End
		}
	}
}

// TestAppendReadReopen: concurrent appends are all read back, in one order,
// across segment files, and again after reopening.
func TestAppendReadReopen(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir, Options{SegmentBytes: 1000})
	require.NoError(t, err)
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				require.NoError(t, l.Append([]byte(fmt.Sprintf("w%d-%03d", w, i))))
			}
		}()
	}
	wg.Wait()
	got, end := readAll(t, l, Position{})
	require.Len(t, got, 400)
	require.Equal(t, l.End(), end)
	seen := map[string]bool{}
	last := map[byte]string{}
	for _, s := range got {
		require.False(t, seen[s], "read twice: %s", s)
		seen[s] = true
		require.Less(t, last[s[1]], s, "one writer's records keep their order")
		last[s[1]] = s
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	require.Greater(t, len(files), 3, "segments rolled over")
	require.NoError(t, l.Close())
	require.ErrorIs(t, l.Append([]byte("late")), ErrClosed)

	l, err = Open(dir, Options{SegmentBytes: 1000})
	require.NoError(t, err)
	defer l.Close()
	again, _ := readAll(t, l, Position{})
	require.Equal(t, got, again)
	require.NoError(t, l.Append([]byte("after reopen")))
	more, _ := readAll(t, l, end)
	require.Equal(t, []string{"after reopen"}, more)
}

// TestTornTailIsCut: a record cut short by a crash (never acknowledged) is
// dropped on open, and appends continue after the last whole record.
func TestTornTailIsCut(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir, Options{})
	require.NoError(t, err)
	require.NoError(t, l.Append([]byte("one")))
	require.NoError(t, l.Append([]byte("two")))
	end := l.End()
	require.NoError(t, l.Close())
	path := filepath.Join(dir, "0000000000000001.log")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	_, err = f.Write([]byte{200, 0, 0, 0, 1, 2, 3, 4, 'p', 'a', 'r'}) // a header promising 200 bytes
	require.NoError(t, err)
	require.NoError(t, f.Close())

	l, err = Open(dir, Options{})
	require.NoError(t, err)
	defer l.Close()
	require.Equal(t, end, l.End())
	require.NoError(t, l.Append([]byte("three")))
	got, _ := readAll(t, l, Position{})
	require.Equal(t, []string{"one", "two", "three"}, got)
}

// TestDamagedRecordIsReported: a flipped byte in a complete segment is a
// CorruptError naming the place, and reading goes on after the record.
func TestDamagedRecordIsReported(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir, Options{SegmentBytes: 30})
	require.NoError(t, err)
	defer l.Close()
	for _, s := range []string{"first-record-xx", "second-record-x", "third-record-xx"} {
		require.NoError(t, l.Append([]byte(s)))
	}
	path := filepath.Join(dir, "0000000000000002.log")
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	b[frameHeader+3] ^= 0xff
	require.NoError(t, os.WriteFile(path, b, 0o644))

	recs, err := l.Read(Position{}, 1<<20)
	require.NoError(t, err)
	require.Len(t, recs, 1)
	_, err = l.Read(recs[0].End, 1<<20)
	var ce *CorruptError
	require.ErrorAs(t, err, &ce)
	require.Equal(t, Position{2, 0}, ce.At)
	require.Equal(t, Position{2, frameHeader + 15}, ce.Next, "only that record is skipped")
	recs, err = l.Read(ce.Next, 1<<20)
	require.NoError(t, err)
	require.Equal(t, "third-record-xx", string(recs[0].Data))
}

// TestDamagedLengthInTheOpenSegment: a length that cannot be right loses
// the rest of its segment, and when that is the segment being written,
// later appends go to a new one, so none is lost behind the damage.
func TestDamagedLengthInTheOpenSegment(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir, Options{})
	require.NoError(t, err)
	defer l.Close()
	require.NoError(t, l.Append([]byte("one")))
	require.NoError(t, l.Append([]byte("two")))
	path := filepath.Join(dir, "0000000000000001.log")
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	b[frameHeader+3] = 0xff // the second record's length
	require.NoError(t, os.WriteFile(path, b, 0o644))

	recs, err := l.Read(Position{}, 1<<20)
	var ce *CorruptError
	require.ErrorAs(t, err, &ce)
	require.Len(t, recs, 1)
	require.Equal(t, Position{Segment: 2}, ce.Next)
	require.NoError(t, l.Append([]byte("three")))
	got, _ := readAll(t, l, ce.Next)
	require.Equal(t, []string{"three"}, got)
}

// TestReleaseAndBacklog: released segments are deleted; a full backlog
// refuses appends until the applier releases.
func TestReleaseAndBacklog(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir, Options{SegmentBytes: 64, MaxBacklog: 200})
	require.NoError(t, err)
	defer l.Close()
	rec := make([]byte, 40) // 48 bytes framed
	for i := 0; i < 4; i++ {
		require.NoError(t, l.Append(rec))
	}
	require.Equal(t, int64(192), l.Backlog())
	require.ErrorIs(t, l.Append(rec), ErrFull)

	recs, _ := readAll(t, l, Position{})
	require.Len(t, recs, 4)
	require.NoError(t, l.Release(l.End()))
	require.Equal(t, int64(0), l.Backlog())
	files, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	require.Len(t, files, 1, "only the open segment is kept")
	require.NoError(t, l.Append(rec))
}

// TestLargeRecord: a record larger than Read's maxBytes is still returned.
func TestLargeRecord(t *testing.T) {
	l, err := Open(t.TempDir(), Options{})
	require.NoError(t, err)
	defer l.Close()
	big := make([]byte, 5000)
	big[4999] = 'z'
	require.NoError(t, l.Append([]byte("small")))
	require.NoError(t, l.Append(big))
	recs, err := l.Read(Position{}, 100)
	require.NoError(t, err)
	require.Len(t, recs, 1)
	recs, err = l.Read(recs[0].End, 100)
	require.NoError(t, err)
	require.Len(t, recs, 1)
	require.Equal(t, big, recs[0].Data)
}

// TestOneProcessPerLog: a second open of a log in use is refused.
func TestOneProcessPerLog(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir, Options{})
	require.NoError(t, err)
	_, err = Open(dir, Options{})
	require.ErrorContains(t, err, "in use by another Huabu process")
	require.NoError(t, l.Close())
	l, err = Open(dir, Options{})
	require.NoError(t, err, "free again once closed")
	require.NoError(t, l.Close())
}
