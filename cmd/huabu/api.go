package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/huabu/huabu/config"
)

// TokenEnv is where the CLI finds its admin API token without --token.
const TokenEnv = "HUABU_TOKEN"

// apiClient talks to a running Huabu's admin API (huabu dev or worker),
// carrying the bearer token on every request.
type apiClient struct {
	base  string
	token string
	http  *http.Client
}

// api returns the client of the running Huabu: --api, else the config's
// http.admin_listen, else its http.listen; the token from --token, else
// $HUABU_TOKEN.
func (c *cli) api() (*apiClient, error) {
	cfg, err := c.loadConfig()
	if err != nil {
		return nil, err
	}
	return newAPIClient(cfg, c.apiAddr, c.bearerToken()), nil
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
