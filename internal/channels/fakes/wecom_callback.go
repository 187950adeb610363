package fakes

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/silenceper/wechat/v2/util"
)

// CallbackSender posts callbacks to a receiver the way WeCom does: the event
// XML encrypted with AES-256-CBC under the EncodingAESKey (random prefix,
// length, body, corp id, PKCS#7), wrapped in an <xml><Encrypt> envelope,
// signed with msg_signature = sha1 of the sorted token, timestamp, nonce and
// ciphertext. Tests use it to send valid, tampered and replayed callbacks;
// the standalone fake uses it to acknowledge template cards.
type CallbackSender struct {
	URL     string // the receiver, e.g. http://127.0.0.1:8080/wecom/callback
	Token   string
	AESKey  string // the 43-character EncodingAESKey
	CorpID  string
	AgentID string
	HTTP    *http.Client
	Now     func() time.Time
}

// Signed is one prepared callback: its query and body, so a test can send
// it twice or change a byte.
type Signed struct {
	Query url.Values
	Body  []byte
}

func (c *CallbackSender) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// Sign encrypts and signs an event for the given time and nonce.
func (c *CallbackSender) Sign(event []byte, at time.Time, nonce string) (Signed, error) {
	random := make([]byte, 16)
	if _, err := rand.Read(random); err != nil {
		return Signed{}, err
	}
	enc, err := util.EncryptMsg(random, event, c.CorpID, c.AESKey)
	if err != nil {
		return Signed{}, err
	}
	ts := strconv.FormatInt(at.Unix(), 10)
	body := fmt.Sprintf("<xml><ToUserName><![CDATA[%s]]></ToUserName><Encrypt><![CDATA[%s]]></Encrypt><AgentID><![CDATA[%s]]></AgentID></xml>", c.CorpID, enc, c.AgentID)
	q := url.Values{"msg_signature": {util.Signature(c.Token, ts, nonce, string(enc))}, "timestamp": {ts}, "nonce": {nonce}}
	return Signed{Query: q, Body: []byte(body)}, nil
}

// Post sends a prepared callback and returns the status and body.
func (c *CallbackSender) Post(ctx context.Context, s Signed) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL+"?"+s.Query.Encode(), bytes.NewReader(s.Body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "text/xml")
	return c.do(req)
}

// Send signs an event now, with a fresh nonce, and posts it.
func (c *CallbackSender) Send(ctx context.Context, event []byte) (int, string, error) {
	s, err := c.Sign(event, c.now(), NewNonce())
	if err != nil {
		return 0, "", err
	}
	return c.Post(ctx, s)
}

// VerifyURL performs WeCom's URL verification: GET with an encrypted
// echostr; a correct receiver answers with the decrypted text.
func (c *CallbackSender) VerifyURL(ctx context.Context, echo string) (int, string, error) {
	random := make([]byte, 16)
	if _, err := rand.Read(random); err != nil {
		return 0, "", err
	}
	enc, err := util.EncryptMsg(random, []byte(echo), c.CorpID, c.AESKey)
	if err != nil {
		return 0, "", err
	}
	ts, nonce := strconv.FormatInt(c.now().Unix(), 10), NewNonce()
	q := url.Values{"msg_signature": {util.Signature(c.Token, ts, nonce, string(enc))}, "timestamp": {ts}, "nonce": {nonce}, "echostr": {string(enc)}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.URL+"?"+q.Encode(), nil)
	if err != nil {
		return 0, "", err
	}
	return c.do(req)
}

func (c *CallbackSender) do(req *http.Request) (int, string, error) {
	client := c.HTTP
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// NewNonce returns a random nonce like WeCom's.
func NewNonce() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ContactAddedEvent is change_external_contact / add_external_contact.
func ContactAddedEvent(corpID, staff, external, state, welcomeCode string, at time.Time) []byte {
	return []byte(fmt.Sprintf(`<xml><ToUserName><![CDATA[%s]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName><CreateTime>%d</CreateTime>`+
		`<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_external_contact]]></Event><ChangeType><![CDATA[add_external_contact]]></ChangeType>`+
		`<UserID><![CDATA[%s]]></UserID><ExternalUserID><![CDATA[%s]]></ExternalUserID><State><![CDATA[%s]]></State><WelcomeCode><![CDATA[%s]]></WelcomeCode></xml>`,
		corpID, at.Unix(), staff, external, state, welcomeCode))
}

// ContactRemovedEvent is del_external_contact (the staff member removed the
// customer) or del_follow_user (the customer removed the staff member).
func ContactRemovedEvent(corpID, changeType, staff, external string, at time.Time) []byte {
	return []byte(fmt.Sprintf(`<xml><ToUserName><![CDATA[%s]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName><CreateTime>%d</CreateTime>`+
		`<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_external_contact]]></Event><ChangeType><![CDATA[%s]]></ChangeType>`+
		`<UserID><![CDATA[%s]]></UserID><ExternalUserID><![CDATA[%s]]></ExternalUserID></xml>`,
		corpID, at.Unix(), changeType, staff, external))
}

// CardClickedEvent is template_card_event: a member tapped a card's button.
func CardClickedEvent(corpID, agentID, userID, taskID, key string, at time.Time) []byte {
	return []byte(fmt.Sprintf(`<xml><ToUserName><![CDATA[%s]]></ToUserName><FromUserName><![CDATA[%s]]></FromUserName><CreateTime>%d</CreateTime>`+
		`<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[template_card_event]]></Event><EventKey><![CDATA[%s]]></EventKey>`+
		`<TaskId><![CDATA[%s]]></TaskId><CardType><![CDATA[button_interaction]]></CardType><ResponseCode><![CDATA[fake-response-code]]></ResponseCode>`+
		`<AgentID>%s</AgentID></xml>`,
		corpID, userID, at.Unix(), key, taskID, agentID))
}
