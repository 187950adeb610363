package server

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/huabu/huabu/internal/auth"
	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/store"
)

// SuppressRequest is the body of POST /api/v1/suppressions and
// /api/v1/suppressions/remove: users (by id) and addresses (phone numbers,
// emails, WeCom external userids), on one channel or, with channel "" (or
// "*" when removing), on all.
type SuppressRequest struct {
	Users     []string `json:"users"`
	Addresses []string `json:"addresses"`
	Channel   string   `json:"channel"`
	Reason    string   `json:"reason"`
}

// SuppressOutcome says how many entries changed.
type SuppressOutcome struct {
	Added   int `json:"added,omitempty"`
	Removed int `json:"removed,omitempty"`
}

// SuppressionFilter selects entries for GET /api/v1/suppressions.
type SuppressionFilter struct {
	Users, Addresses []string
	Channel          string
	Limit            int
}

func (h *Handler) registerOptOut() {
	h.HandleAdmin("GET /api/v1/suppressions", auth.Read, http.HandlerFunc(h.listSuppressions))
	h.HandleAdmin("POST /api/v1/suppressions", auth.Suppress, http.HandlerFunc(h.suppress))
	h.HandleAdmin("POST /api/v1/suppressions/remove", auth.Suppress, http.HandlerFunc(h.unsuppress))
	h.HandleAdmin("DELETE /api/v1/users/{id}", auth.Forget, http.HandlerFunc(h.forgetOne))
	h.HandleAdmin("POST /api/v1/users/forget", auth.Forget, http.HandlerFunc(h.forgetMany))
}

// readSuppressRequest decodes and checks a suppression body.
func readSuppressRequest(w http.ResponseWriter, r *http.Request, removing bool) (SuppressRequest, bool) {
	var req SuppressRequest
	if err := decodeStrict(r.Body, &req); err != nil {
		writeError(w, http.StatusBadRequest, jsonField(err), "invalid JSON body: "+err.Error())
		return req, false
	}
	if len(req.Users)+len(req.Addresses) == 0 {
		writeError(w, http.StatusBadRequest, "users", "name at least one user (users) or address (addresses)")
		return req, false
	}
	for i, u := range req.Users {
		if strings.TrimSpace(u) == "" {
			writeError(w, http.StatusBadRequest, "users["+strconv.Itoa(i)+"]", "user ids must not be empty")
			return req, false
		}
	}
	for i, a := range req.Addresses {
		if strings.TrimSpace(a) == "" {
			writeError(w, http.StatusBadRequest, "addresses["+strconv.Itoa(i)+"]", "addresses must not be empty")
			return req, false
		}
	}
	if msg := checkChannel(req.Channel, removing); msg != "" {
		writeError(w, http.StatusBadRequest, "channel", msg)
		return req, false
	}
	return req, true
}

// checkChannel accepts "" (every channel), a catalogue channel, and "*"
// where all of a subject's entries are meant.
func checkChannel(ch string, starOK bool) string {
	if ch == "" || starOK && ch == store.AllChannels || canvases.Channel(ch) != nil {
		return ""
	}
	names := make([]string, 0, len(canvases.Channels))
	for _, c := range canvases.Channels {
		names = append(names, c.Name)
	}
	return "channel " + strconv.Quote(ch) + " is not one of " + strings.Join(names, ", ") + ` ("" for every channel)`
}

func (h *Handler) suppress(w http.ResponseWriter, r *http.Request) {
	req, ok := readSuppressRequest(w, r, false)
	if !ok {
		return
	}
	out, err := h.b.Suppress(r.Context(), req)
	if err != nil {
		h.backendError(w, "users", err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *Handler) unsuppress(w http.ResponseWriter, r *http.Request) {
	req, ok := readSuppressRequest(w, r, true)
	if !ok {
		return
	}
	out, err := h.b.Unsuppress(r.Context(), req)
	if err != nil {
		h.backendError(w, "users", err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *Handler) listSuppressions(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := SuppressionFilter{Users: q["user"], Addresses: q["address"], Channel: q.Get("channel")}
	if msg := checkChannel(f.Channel, true); msg != "" {
		writeError(w, http.StatusBadRequest, "channel", msg)
		return
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 100000 {
			writeError(w, http.StatusBadRequest, "limit", "limit must be a number from 1 to 100000")
			return
		}
		f.Limit = n
	}
	list, err := h.b.Suppressions(r.Context(), f)
	if err != nil {
		h.internal(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"suppressions": list})
}

func (h *Handler) forgetOne(w http.ResponseWriter, r *http.Request) {
	h.forget(w, r, []string{r.PathValue("id")})
}

func (h *Handler) forgetMany(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Users []string `json:"users"`
	}
	if err := decodeStrict(r.Body, &body); err != nil {
		writeError(w, http.StatusBadRequest, jsonField(err), "invalid JSON body: "+err.Error())
		return
	}
	if len(body.Users) == 0 {
		writeError(w, http.StatusBadRequest, "users", "name at least one user id")
		return
	}
	for i, u := range body.Users {
		if strings.TrimSpace(u) == "" {
			writeError(w, http.StatusBadRequest, "users["+strconv.Itoa(i)+"]", "user ids must not be empty")
			return
		}
	}
	h.forget(w, r, body.Users)
}

func (h *Handler) forget(w http.ResponseWriter, r *http.Request, ids []string) {
	res, err := h.b.Forget(r.Context(), ids)
	if err != nil {
		h.internal(w, err)
		return
	}
	if len(ids) == 1 && res.Forgotten == 0 {
		writeError(w, http.StatusNotFound, "id", "no user "+strconv.Quote(ids[0])+" (already forgotten, or never known)")
		return
	}
	writeJSON(w, http.StatusOK, res)
}
