package sqliteheap

import (
	"math/bits"
	"os"
	"sync"
	"unsafe"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
)

const (
	// header holds a block's usable size in front of it (SQLite's default
	// allocator does the same): free and size read it back.
	header = 8
	// Blocks of minClass..maxClass bytes (header included) are pooled.
	minClass = 1 << 10
	maxClass = 1 << 20
)

// MaxCached bounds the bytes kept on the free lists; a block freed beyond
// it goes back to the default allocator.
const MaxCached = 32 << 20

var (
	// Installed reports whether SQLite uses this allocator.
	Installed bool

	mu     sync.Mutex
	free   [bits.UintSize][]uintptr // by log2 of the block size
	cached int                      // bytes on the free lists
)

func init() {
	if os.Getenv("HUABU_SQLITE_HEAP") == "default" {
		return
	}
	Installed = install()
}

// methods is SQLite's sqlite3_mem_methods; SQLite copies it when configured.
var methods sqlite3.Tsqlite3_mem_methods

func install() bool {
	methods = sqlite3.Tsqlite3_mem_methods{
		FxMalloc:   cFunc(xMalloc),
		FxFree:     cFunc(xFree),
		FxRealloc:  cFunc(xRealloc),
		FxSize:     cFunc(xSize),
		FxRoundup:  cFunc(xRoundup),
		FxInit:     cFunc(xInit),
		FxShutdown: cFunc(xShutdown),
	}
	tls := libc.NewTLS()
	defer tls.Close()
	va := tls.Alloc(16)
	defer tls.Free(16)
	// SQLITE_MISUSE when SQLite is in use already: then its own allocator stays.
	return sqlite3.Xsqlite3_config(tls, sqlite3.SQLITE_CONFIG_MALLOC, libc.VaList(va, uintptr(unsafe.Pointer(&methods)))) == sqlite3.SQLITE_OK
}

// cFunc is a Go function as the C function pointer the translated SQLite
// calls (a func value is a pointer to its code: https://golang.org/s/go11func).
func cFunc[T any](f T) uintptr { return *(*uintptr)(unsafe.Pointer(&struct{ f T }{f})) }

// word is the 8-byte header at p, a C address (outside the Go heap).
func word(p uintptr) *int64 { return (*int64)(*(*unsafe.Pointer)(unsafe.Pointer(&p))) }

// class is the pooled size of a block of total bytes (header included), or
// 0 when such blocks are not pooled.
func class(total int) int {
	if total <= minClass || total > maxClass {
		return 0
	}
	return 1 << bits.Len(uint(total-1))
}

func xMalloc(tls *libc.TLS, n int32) uintptr {
	total := int(n) + header
	size := class(total)
	var p uintptr
	if size != 0 {
		mu.Lock()
		list := free[bits.TrailingZeros(uint(size))]
		if k := len(list); k > 0 {
			p = list[k-1]
			free[bits.TrailingZeros(uint(size))] = list[:k-1]
			cached -= size
		}
		mu.Unlock()
		total = size
	}
	if p == 0 {
		if p = libc.Xmalloc(tls, uint64(total)); p == 0 {
			return 0
		}
	}
	*word(p) = int64(total - header)
	return p + header
}

func xFree(tls *libc.TLS, p uintptr) {
	base := p - header
	total := int(*word(base)) + header
	if size := class(total); size == total {
		mu.Lock()
		if cached+size <= MaxCached {
			log := bits.TrailingZeros(uint(size))
			free[log] = append(free[log], base)
			cached += size
			mu.Unlock()
			return
		}
		mu.Unlock()
	}
	libc.Xfree(tls, base)
}

func xSize(tls *libc.TLS, p uintptr) int32 {
	return int32(*word(p - header))
}

func xRealloc(tls *libc.TLS, p uintptr, n int32) uintptr {
	if old := xSize(tls, p); n <= old && xRoundup(tls, n) == old {
		return p
	}
	q := xMalloc(tls, n)
	if q == 0 {
		return 0 // p stays valid, as realloc leaves it
	}
	libc.Xmemcpy(tls, q, p, uint64(min(xSize(tls, p), n)))
	xFree(tls, p)
	return q
}

// xRoundup is the usable size xMalloc gives for n bytes (SQLite asks first
// and then allocates that much).
func xRoundup(tls *libc.TLS, n int32) int32 {
	if size := class(int(n) + header); size != 0 {
		return int32(size - header)
	}
	return (n + 7) &^ 7
}

func xInit(tls *libc.TLS, appData uintptr) int32 { return sqlite3.SQLITE_OK }

func xShutdown(tls *libc.TLS, appData uintptr) {}

// Cached is the bytes on the free lists now (tests, metrics).
func Cached() int {
	mu.Lock()
	defer mu.Unlock()
	return cached
}
