package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/huabu/huabu/config"
)

// apiClient talks to a running Huabu's HTTP API (huabu dev or worker).
type apiClient struct {
	base string
	http *http.Client
}

func newAPIClient(cfg *config.Config, override string) *apiClient {
	base := override
	if base == "" {
		base = cfg.HTTP.Listen
	}
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	return &apiClient{base: strings.TrimRight(base, "/"), http: &http.Client{Timeout: 60 * time.Second}}
}

// call sends a JSON request and decodes the JSON answer into out. A 4xx
// answer is the user's error and comes back as a userError.
func (a *apiClient) call(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.http.Do(req)
	if err != nil {
		return userErrorf("cannot reach Huabu at %s (is `huabu dev` running?): %v", a.base, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if resp.StatusCode >= 400 {
		var e struct {
			Error string `json:"error"`
			Field string `json:"field"`
		}
		_ = json.Unmarshal(data, &e)
		msg := e.Error
		if msg == "" {
			msg = strings.TrimSpace(string(data))
		}
		if e.Field != "" {
			msg = e.Field + ": " + msg
		}
		if resp.StatusCode < 500 {
			if out != nil {
				_ = json.Unmarshal(data, out)
			}
			return userError{fmt.Errorf("%s", msg)}
		}
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, msg)
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}
