package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/huabu/huabu/internal/config"
)

// TokenEnv is where the CLI finds its admin API token without --token.
const TokenEnv = "HUABU_TOKEN"

// apiClient talks to a running Huabu's admin API (huabu dev or worker),
// carrying the bearer token on every request.
type apiClient struct {
	base  string
	token string
	http  *http.Client
	// startHint is the command that would start the server this client
	// looks for: huabu dev -c FILE.
	startHint string
}

// api returns the client of the running Huabu: --api, else the config's
// http.admin_listen, else its http.listen; the token from --token, else
// $HUABU_TOKEN.
func (c *cli) api() (*apiClient, error) {
	cfg, err := c.loadConfig()
	if err != nil {
		return nil, err
	}
	api := newAPIClient(cfg, c.apiAddr, c.bearerToken())
	api.startHint = "huabu dev"
	if c.configPath != "" {
		api.startHint += " -c " + c.configPath
	}
	if c.dataDir != "data" {
		api.startHint += " --data " + c.dataDir
	}
	return api, nil
}

func (c *cli) bearerToken() string {
	if c.token != "" {
		return c.token
	}
	return strings.TrimSpace(os.Getenv(TokenEnv))
}

func newAPIClient(cfg *config.Config, override, token string) *apiClient {
	base := override
	if base == "" {
		base = cfg.HTTP.Listen
		if cfg.HTTP.AdminListen != "" {
			base = cfg.HTTP.AdminListen
		}
		base = dialable(base)
	}
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	return &apiClient{base: strings.TrimRight(base, "/"), token: token, http: &http.Client{Timeout: 60 * time.Second}}
}

// dialable turns a listen address into one to connect to: a server
// listening on every interface (0.0.0.0:8080, :8080) is reached on loopback.
func dialable(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		return net.JoinHostPort("127.0.0.1", port)
	}
	return listen
}

// errNotRunning: no server listens where the client looks.
type errNotRunning struct{ error }

func (e errNotRunning) Unwrap() error { return e.error }

// unreachable explains a request that reached no server.
func (a *apiClient) unreachable(err error) error {
	if a.startHint == "" {
		a.startHint = "huabu dev"
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return userError{errNotRunning{fmt.Errorf("nothing is running at %s: start Huabu first (%s), or point --server at the one that runs", a.base, a.startHint)}}
	}
	return userErrorf("cannot reach Huabu at %s: %v\n(is it running? start it with %s, or point --server at it)", a.base, err, a.startHint)
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
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return a.unreachable(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if resp.StatusCode == http.StatusNotFound && !strings.Contains(resp.Header.Get("Content-Type"), "json") {
		return userErrorf("something answers at %s, but it is not Huabu's admin API (%s %s: %s); check --server or the config's http.listen / http.admin_listen", a.base, method, path, resp.Status)
	}
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
		if e.Field != "" && e.Field != "Authorization" {
			msg = e.Field + ": " + msg
		}
		switch {
		case resp.StatusCode == http.StatusUnauthorized && a.token == "":
			msg += "\n(no token given: set " + TokenEnv + " or pass --token)"
		case resp.StatusCode == http.StatusUnauthorized:
			msg += "\n(the token from --token or " + TokenEnv + " is not one of the server's auth.tokens)"
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
