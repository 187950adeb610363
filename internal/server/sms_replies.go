package server

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"unicode"

	"github.com/huabu/huabu/internal/store"
)

// SuppressionStore keeps the suppression list.
type SuppressionStore interface {
	Suppress(ctx context.Context, entries []store.Suppression) (int, error)
}

// SMSReplies serves POST /sms/replies: the provider pushes the replies
// people send to marketing SMS, and unsubscribe replies put the number on
// the SMS suppression list. The providers sign nothing, so the URL carries
// a secret token (channels.sms.reply_token) compared in constant time.
type SMSReplies struct {
	Provider string // aliyun | tencent: the push format
	Token    string
	Store    SuppressionStore
	Log      *slog.Logger
	// Recorded, when set, is told how many numbers a push suppressed (the
	// audit log).
	Recorded func(ctx context.Context, source string, replies, added int)
}

// aliyunUp is one entry of Aliyun's SmsUp HTTP batch push.
type aliyunUp struct {
	PhoneNumber string          `json:"phone_number"`
	SendTime    string          `json:"send_time"`
	Content     string          `json:"content"`
	SignName    string          `json:"sign_name"`
	DestCode    string          `json:"dest_code"`
	SequenceID  json.RawMessage `json:"sequence_id"` // a number or a string, by the docs' version
}

// tencentReply is Tencent's SMS reply callback.
type tencentReply struct {
	Extend     string `json:"extend"`
	Mobile     string `json:"mobile"`
	NationCode string `json:"nationcode"`
	Sign       string `json:"sign"`
	Text       string `json:"text"`
	Time       int64  `json:"time"`
}

// reply is a reply in either format.
type reply struct{ phone, text string }

func (h *SMSReplies) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.Token == "" || subtle.ConstantTimeCompare([]byte(r.URL.Query().Get("token")), []byte(h.Token)) != 1 {
		h.Log.Warn("sms replies: bad token", "remote", r.RemoteAddr)
		writeError(w, http.StatusForbidden, "token", "the token in the URL is not channels.sms.reply_token")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 4<<20))
	if err != nil {
		writeError(w, http.StatusBadRequest, "", "unreadable body")
		return
	}
	replies, source, err := h.parse(body)
	if err != nil {
		writeError(w, http.StatusBadRequest, "", err.Error())
		return
	}
	var entries []store.Suppression
	for _, rp := range replies {
		if rp.phone == "" || !IsUnsubscribeReply(rp.text) {
			continue
		}
		entries = append(entries, store.Suppression{Subject: store.AddressSubject(rp.phone), Channel: "sms", Source: source,
			Reason: "replied " + strings.TrimSpace(rp.text), Display: store.MaskAddress(rp.phone)})
	}
	added, err := h.Store.Suppress(r.Context(), entries)
	if err != nil {
		// A 5xx makes the provider push again later.
		h.Log.Error("sms replies: storing suppressions", "err", err)
		writeError(w, http.StatusInternalServerError, "", "internal error")
		return
	}
	if len(entries) > 0 {
		h.Log.Info("sms replies: numbers unsubscribed", "source", source, "replies", len(replies), "new", added)
		if h.Recorded != nil {
			h.Recorded(r.Context(), source, len(replies), added)
		}
	}
	if h.Provider == "tencent" {
		writeJSON(w, http.StatusOK, map[string]any{"result": 0, "errmsg": "OK"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"code": 0, "msg": "接收成功"})
}

func (h *SMSReplies) parse(body []byte) ([]reply, string, error) {
	switch h.Provider {
	case "aliyun":
		var ups []aliyunUp
		if err := json.Unmarshal(body, &ups); err != nil {
			return nil, "", errors.New("the body is not an Aliyun SmsUp push (a JSON array of {phone_number, content, ...})")
		}
		out := make([]reply, len(ups))
		for i, u := range ups {
			out[i] = reply{phone: u.PhoneNumber, text: u.Content}
		}
		return out, store.SuppressAliyunReply, nil
	case "tencent":
		var t tencentReply
		if err := json.Unmarshal(body, &t); err != nil || t.Mobile == "" {
			return nil, "", errors.New("the body is not a Tencent SMS reply callback ({mobile, nationcode, text, ...})")
		}
		phone := t.Mobile
		if t.NationCode != "" && t.NationCode != "86" {
			phone = "+" + t.NationCode + t.Mobile
		}
		return []reply{{phone: phone, text: t.Text}}, store.SuppressTencentReply, nil
	}
	return nil, "", errors.New("channels.sms.provider has no reply format")
}

// unsubscribeWords are whole replies that mean "stop" (after folding width
// and case and dropping spaces and punctuation); unsubscribePhrases mean it
// anywhere in a reply.
var (
	unsubscribeWords   = map[string]bool{"T": true, "TD": true, "TDT": true, "N": false, "STOP": true, "UNSUBSCRIBE": true, "退": true, "QXDY": true}
	unsubscribePhrases = []string{"退订", "拒收", "退定", "取消订阅"}
)

// IsUnsubscribeReply reads a reply to a marketing SMS: T, TD, 退订, 拒收 and
// the like, in any case and width (ＴＤ, ｔｄ), with spaces or punctuation
// around.
func IsUnsubscribeReply(text string) bool {
	folded := strings.Map(func(r rune) rune {
		switch {
		case r >= 0xFF01 && r <= 0xFF5E: // full-width ASCII
			r -= 0xFEE0
		case r == 0x3000:
			return -1
		}
		if unicode.IsSpace(r) || unicode.IsPunct(r) || unicode.IsSymbol(r) {
			return -1
		}
		return unicode.ToUpper(r)
	}, text)
	if unsubscribeWords[folded] {
		return true
	}
	for _, p := range unsubscribePhrases {
		if strings.Contains(folded, p) {
			return true
		}
	}
	return false
}
