package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// When another Huabu already holds what this one needs — its data
// directory, its HTTP port — the error says which one, so that a user who
// starts a second `huabu dev` knows what to stop.

// Holder describes a Huabu process.
type Holder struct {
	PID       int       `json:"pid,omitempty"`
	StartedAt time.Time `json:"started_at"`
	HTTP      string    `json:"http,omitempty"`   // its API address
	Config    string    `json:"config,omitempty"` // its config file
}

func (h Holder) String() string {
	var parts []string
	if h.PID > 0 {
		parts = append(parts, fmt.Sprintf("pid %d", h.PID))
	}
	if h.HTTP != "" {
		parts = append(parts, "API http://"+h.HTTP)
	}
	if h.Config != "" {
		parts = append(parts, "config "+h.Config)
	}
	if !h.StartedAt.IsZero() {
		parts = append(parts, "started "+h.StartedAt.Format("2006-01-02 15:04:05 -07:00"))
	}
	return strings.Join(parts, ", ")
}

func (h Holder) stopHint() string {
	if h.PID > 0 {
		return fmt.Sprintf("stop it first (Ctrl-C in its terminal, or kill %d)", h.PID)
	}
	return "stop it first (Ctrl-C in its terminal)"
}

// DataDirInUseError: another Huabu runs on the same data directory.
type DataDirInUseError struct {
	Dir    string
	Holder Holder
}

func (e *DataDirInUseError) Error() string {
	return fmt.Sprintf("data directory %s is in use by another Huabu (%s): %s, or give this one its own --data DIR (and http.listen)", e.Dir, e.Holder, e.Holder.stopHint())
}

// AddrInUseError: the address an http.* key names is taken.
type AddrInUseError struct {
	Key, Addr string
	Holder    *Holder // nil when what holds it is not a Huabu
}

func (e *AddrInUseError) Error() string {
	if e.Holder == nil {
		return fmt.Sprintf("%s %s is in use by another program (not a Huabu): stop it, or set %s to a free address", e.Key, e.Addr, e.Key)
	}
	return fmt.Sprintf("%s %s is in use by another Huabu (%s): %s, or give this one its own %s (and --data)", e.Key, e.Addr, e.Holder, e.Holder.stopHint(), e.Key)
}

// listen claims an address, naming the Huabu that holds it if it is taken.
func listen(key, addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err == nil {
		return ln, nil
	}
	if !errors.Is(err, syscall.EADDRINUSE) {
		return nil, fmt.Errorf("%s %s: %w", key, addr, err)
	}
	return nil, &AddrInUseError{Key: key, Addr: addr, Holder: probeHuabu(addr)}
}

// probeHuabu asks whatever listens on addr whether it is a Huabu.
func probeHuabu(addr string) *Holder {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+net.JoinHostPort(host, port)+"/healthz", nil)
	if err != nil {
		return nil
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var body struct {
		Service   string    `json:"service"`
		PID       int       `json:"pid"`
		StartedAt time.Time `json:"started_at"`
	}
	if json.NewDecoder(resp.Body).Decode(&body) != nil || body.Service != "huabu" {
		return nil
	}
	return &Holder{PID: body.PID, StartedAt: body.StartedAt, HTTP: addr}
}

// dataLockFile is the lock a running Huabu holds in its data directory.
const dataLockFile = "huabu.lock"

// lockDataDir takes the data directory for this process and writes who
// holds it; the lock goes with the process, however it ends.
func lockDataDir(dir string, me Holder) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, dataLockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := tryLock(f); err != nil {
		f.Close()
		if errors.Is(err, errLocked) {
			var other Holder
			if b, rerr := os.ReadFile(path); rerr == nil {
				_ = json.Unmarshal(b, &other)
			}
			return nil, &DataDirInUseError{Dir: dir, Holder: other}
		}
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	b, _ := json.Marshal(me)
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt(b, 0)
	}
	return f, nil
}

var errLocked = errors.New("locked")
