package fakes

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Upstream replies: a person answers a marketing SMS ("TD", "退订"), and the
// provider pushes the reply to the URL configured in its console — Aliyun
// as an SmsUp HTTP batch push, Tencent as its SMS reply callback — in their
// real formats, expecting their real acknowledgements. Like the real
// services, the providers then refuse further marketing to the number.

// Reply pushes a reply from phone to url as Aliyun's SmsUp HTTP batch push:
// a JSON array of {phone_number, send_time, content, sign_name, dest_code,
// sequence_id}; the receiver must answer 200 with {"code": 0, ...}.
func (f *AliyunSMS) Reply(ctx context.Context, url, phone, text string) error {
	f.mu.Lock()
	f.n++
	seq := f.n
	f.mu.Unlock()
	body := []map[string]any{{
		"phone_number": phone, "send_time": time.Now().In(shanghai).Format("2006-01-02 15:04:05"), "content": text,
		"sign_name": "华布", "dest_code": "1234", "sequence_id": 1000000 + seq,
	}}
	var ack struct {
		Code *json.Number `json:"code"`
	}
	if err := postJSON(ctx, url, body, &ack); err != nil {
		return err
	}
	if ack.Code == nil {
		return fmt.Errorf("aliyun SmsUp push: the answer has no numeric code")
	}
	if isUnsubscribe(text) {
		f.mu.Lock()
		if f.Refused == nil {
			f.Refused = map[string]bool{}
		}
		f.Refused[phone] = true
		f.mu.Unlock()
	}
	return nil
}

// Reply pushes a reply from phone (mainland, without +86) to url as
// Tencent's SMS reply callback: {extend, mobile, nationcode, sign, text,
// time}; the receiver must answer {"result": 0, "errmsg": "OK"}.
func (f *TencentSMS) Reply(ctx context.Context, url, phone, text string) error {
	body := map[string]any{"extend": "", "mobile": phone, "nationcode": "86", "sign": "华布", "text": text, "time": time.Now().Unix()}
	var ack struct {
		Result *int   `json:"result"`
		ErrMsg string `json:"errmsg"`
	}
	if err := postJSON(ctx, url, body, &ack); err != nil {
		return err
	}
	if ack.Result == nil || *ack.Result != 0 {
		return fmt.Errorf("tencent reply callback: result %v %s", ack.Result, ack.ErrMsg)
	}
	if isUnsubscribe(text) {
		f.mu.Lock()
		if f.Blacklisted == nil {
			f.Blacklisted = map[string]bool{}
		}
		f.Blacklisted["+86"+phone] = true
		f.mu.Unlock()
	}
	return nil
}

var shanghai = time.FixedZone("CST", 8*3600)

func postJSON(ctx context.Context, url string, body, out any) error {
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// isUnsubscribe is how carriers and providers read a reply: the common
// unsubscribe words.
func isUnsubscribe(text string) bool {
	t := strings.ToUpper(strings.TrimSpace(text))
	return t == "T" || t == "TD" || strings.Contains(t, "退订") || strings.Contains(t, "拒收")
}
