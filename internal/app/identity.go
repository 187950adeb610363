package app

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// A worker's identity among the workers of one store: its host and a
// random id kept in its data directory (workerIDFile), so the same worker
// restarted — same data directory, same accept log — is the same worker.
// It names the worker's router-lease holding (a restarted worker takes back
// the lease it held at once, instead of waiting up to 12 s for it to
// expire) and, on PostgreSQL, the store setting with its accept log's
// applied position (each worker has its own log). Only a process holding
// the data directory's lock uses it: two live processes must never share it.

const workerIDFile = "worker-id"

// workerIdentity reads the data directory's worker id, creating it on
// first use, and returns "host/id".
func workerIdentity(dataDir string) (string, error) {
	path := filepath.Join(dataDir, workerIDFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		r := make([]byte, 8)
		if _, err := rand.Read(r); err != nil {
			return "", err
		}
		b = []byte(hex.EncodeToString(r))
		// Written whole or not at all: a crash leaves no half id behind.
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
			return "", err
		}
		if err := os.Rename(tmp, path); err != nil {
			return "", err
		}
	} else if err != nil {
		return "", err
	}
	id := strings.TrimSpace(string(b))
	if id == "" {
		return "", fmt.Errorf("%s is empty: remove it and this worker gets a new id", path)
	}
	host, _ := os.Hostname()
	return host + "/" + id, nil
}
