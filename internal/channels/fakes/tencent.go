package fakes

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// TencentSMS is a fake of Tencent Cloud SMS SendSms (2021-01-11): POST /
// with X-TC-Action/X-TC-Version headers and a TC3-HMAC-SHA256 Authorization
// header (checked against the configured SecretKey); it answers a
// SendStatusSet with a code per number, or a whole-request Error.
type TencentSMS struct {
	base
	SecretID, SecretKey, SdkAppID string
	// Blacklisted numbers (E.164) get FailedOperation.PhoneNumberInBlacklist.
	Blacklisted map[string]bool
	// Throttled numbers get LimitExceeded.DeliveryFrequencyLimit.
	Throttled map[string]bool
	// Invalid numbers (E.164) are well-formed but get
	// InvalidParameterValue.IncorrectPhoneNumber, like malformed ones.
	Invalid map[string]bool
	// Templates, when set, are the approved template ids with their
	// parameter count.
	Templates map[string]int
	Now       func() time.Time

	mu   sync.Mutex
	n    int
	sent []SMS
}

// NewTencentSMS starts a Tencent SMS fake.
func NewTencentSMS(secretID, secretKey, sdkAppID string) *TencentSMS {
	f := &TencentSMS{SecretID: secretID, SecretKey: secretKey, SdkAppID: sdkAppID, Now: time.Now}
	f.init()
	f.srv = httptest.NewServer(http.HandlerFunc(f.handle))
	return f
}

// Endpoint is the value for channels.sms.endpoint.
func (f *TencentSMS) Endpoint() string { return f.srv.URL }

var tencentE164 = regexp.MustCompile(`^\+[1-9]\d{6,14}$`)

func tencentReply(w http.ResponseWriter, resp map[string]any) {
	resp["RequestId"] = "fake-request-id"
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"Response": resp})
}

func tencentError(w http.ResponseWriter, code, msg string) {
	tencentReply(w, map[string]any{"Error": map[string]string{"Code": code, "Message": msg}})
}

func (f *TencentSMS) handle(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.record(r, body)
	if code, msg := f.verify(r, body); code != "" {
		tencentError(w, code, msg)
		return
	}
	if r.Header.Get("X-TC-Action") != "SendSms" || r.Header.Get("X-TC-Version") != "2021-01-11" {
		tencentError(w, "InvalidAction", "the action or version does not exist")
		return
	}
	var req struct {
		PhoneNumberSet   []string
		SmsSdkAppId      string
		TemplateId       string
		SignName         string
		TemplateParamSet []string
		SessionContext   string
	}
	if err := json.Unmarshal(body, &req); err != nil {
		tencentError(w, "FailedOperation.JsonParseFail", "json parse fail")
		return
	}
	switch {
	case req.SmsSdkAppId != f.SdkAppID:
		tencentError(w, "UnauthorizedOperation.SmsSdkAppIdVerifyFail", "SmsSdkAppId verify fail")
		return
	case len(req.PhoneNumberSet) == 0:
		tencentError(w, "MissingParameter.EmptyPhoneNumberSet", "PhoneNumberSet is empty")
		return
	case len(req.PhoneNumberSet) > 200:
		tencentError(w, "LimitExceeded.PhoneNumberCountLimit", "more than 200 numbers")
		return
	case req.SignName == "":
		tencentError(w, "FailedOperation.MissingSignature", "missing signature")
		return
	}
	if f.Templates != nil {
		n, ok := f.Templates[req.TemplateId]
		if !ok {
			tencentError(w, "FailedOperation.TemplateIncorrectOrUnapproved", "template unapproved or not exist")
			return
		}
		if n != len(req.TemplateParamSet) {
			tencentError(w, "FailedOperation.TemplateParamSetNotMatchApprovedTemplate", "param count mismatch")
			return
		}
	}
	fault := f.Next()
	switch fault {
	case ServerError:
		tencentError(w, "InternalError.OtherError", "internal error")
		return
	case HTTP5xx:
		http.Error(w, "bad gateway", http.StatusBadGateway)
		return
	case Timeout:
		f.hang(r)
		return
	}
	params := map[string]string{}
	for i, p := range req.TemplateParamSet {
		params[strconv.Itoa(i+1)] = p
	}
	var set []map[string]any
	f.mu.Lock()
	for _, ph := range req.PhoneNumberSet {
		f.n++
		st := map[string]any{"SerialNo": fmt.Sprintf("fake-serial-%d", f.n), "PhoneNumber": ph, "Fee": 1, "SessionContext": req.SessionContext, "IsoCode": "CN"}
		code, msg := "Ok", "send success"
		switch {
		case !tencentE164.MatchString(ph) || f.Invalid[ph]:
			code, msg = "InvalidParameterValue.IncorrectPhoneNumber", "incorrect phone number"
		case f.Blacklisted[ph]:
			code, msg = "FailedOperation.PhoneNumberInBlacklist", "phone number in blacklist"
		case f.Throttled[ph] || fault == RateLimit:
			code, msg = "LimitExceeded.DeliveryFrequencyLimit", "delivery frequency limit"
		}
		if code != "Ok" {
			st["Fee"] = 0
		} else {
			f.sent = append(f.sent, SMS{Phone: ph, Sign: req.SignName, Template: req.TemplateId, Params: params, BizID: st["SerialNo"].(string)})
			f.add(ph)
		}
		st["Code"], st["Message"] = code, msg
		set = append(set, st)
	}
	f.mu.Unlock()
	if fault == TimeoutAfterDelivery {
		f.hang(r)
		return
	}
	tencentReply(w, map[string]any{"SendStatusSet": set})
}

// Sent lists the messages accepted, in order.
func (f *TencentSMS) Sent() []SMS {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]SMS(nil), f.sent...)
}

// verify checks TC3-HMAC-SHA256 as Tencent Cloud does.
func (f *TencentSMS) verify(r *http.Request, body []byte) (string, string) {
	auth := r.Header.Get("Authorization")
	const algo = "TC3-HMAC-SHA256 "
	if !strings.HasPrefix(auth, algo) {
		return "AuthFailure.InvalidAuthorization", "Authorization header is not TC3-HMAC-SHA256"
	}
	parts := map[string]string{}
	for _, kv := range strings.Split(strings.TrimPrefix(auth, algo), ", ") {
		k, v, _ := strings.Cut(kv, "=")
		parts[k] = v
	}
	cred := strings.Split(parts["Credential"], "/")
	if len(cred) != 4 || cred[2] != "sms" || cred[3] != "tc3_request" {
		return "AuthFailure.InvalidAuthorization", "bad Credential"
	}
	if cred[0] != f.SecretID {
		return "AuthFailure.SecretIdNotFound", "the SecretId is not found"
	}
	ts, err := strconv.ParseInt(r.Header.Get("X-TC-Timestamp"), 10, 64)
	if err != nil || f.Now().Sub(time.Unix(ts, 0)).Abs() > 5*time.Minute {
		return "AuthFailure.SignatureExpire", "signature expired"
	}
	date := time.Unix(ts, 0).UTC().Format("2006-01-02")
	if cred[1] != date {
		return "AuthFailure.SignatureFailure", "credential date does not match the timestamp"
	}
	ph := sha256.Sum256(body)
	canon := r.Method + "\n/\n\ncontent-type:" + r.Header.Get("Content-Type") + "\nhost:" + r.Host + "\n\ncontent-type;host\n" + hex.EncodeToString(ph[:])
	ch := sha256.Sum256([]byte(canon))
	toSign := "TC3-HMAC-SHA256\n" + r.Header.Get("X-TC-Timestamp") + "\n" + date + "/sms/tc3_request\n" + hex.EncodeToString(ch[:])
	mac := func(key []byte, s string) []byte {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(s))
		return m.Sum(nil)
	}
	k := mac(mac(mac([]byte("TC3"+f.SecretKey), date), "sms"), "tc3_request")
	if !hmac.Equal([]byte(hex.EncodeToString(mac(k, toSign))), []byte(parts["Signature"])) {
		return "AuthFailure.SignatureFailure", "The provided credentials could not be validated."
	}
	return "", ""
}

func init() {
	RegisterStandalone(Standalone{
		Name: "tencent", Title: "Tencent Cloud SMS", Addr: "127.0.0.1:9003", Unit: "numbers",
		Doc:       "Tencent Cloud SMS SendSms",
		FailKinds: []string{"blacklisted", "invalid", "throttled"},
		FailDoc: `phone numbers: blacklisted (FailedOperation.PhoneNumberInBlacklist),
           invalid (InvalidParameterValue.IncorrectPhoneNumber), throttled`,
		Start: func(o StandaloneOptions) (*Running, error) {
			f, err := NewTencentSMSAt(o.Addr, o.Key, o.Secret, o.SDKAppID)
			if err != nil {
				return nil, err
			}
			f.Blacklisted, f.Invalid, f.Throttled = map[string]bool{}, map[string]bool{}, map[string]bool{}
			for r, k := range o.Fails {
				n := "+86" + nationalNumber(r)
				if strings.HasPrefix(r, "+") && !strings.HasPrefix(r, "+86") {
					n = r
				}
				map[string]map[string]bool{"blacklisted": f.Blacklisted, "invalid": f.Invalid, "throttled": f.Throttled}[k][n] = true
			}
			return &Running{URL: f.URL(), Close: f.Close, OnCall: f.OnCall, Faults: &f.Faults, Ledger: &f.Ledger, Summarize: tencentCallLine,
				Config: fmt.Sprintf(`sms: {provider: tencent, secret_id: %s, secret_key: %s, sdk_app_id: "%s", sign_name: 华布, endpoint: "%s"}`, o.Key, o.Secret, o.SDKAppID, f.URL())}, nil
		},
	})
}

func tencentCallLine(call Call) (string, []string) {
	var req struct {
		PhoneNumberSet   []string
		TemplateId       string
		TemplateParamSet []string
	}
	_ = json.Unmarshal(call.Body, &req)
	params := ""
	if len(req.TemplateParamSet) > 0 {
		b, _ := json.Marshal(req.TemplateParamSet)
		params = " " + string(b)
	}
	head := fmt.Sprintf("tencent %s %s %s%s →", call.Header.Get("X-TC-Action"), req.TemplateId, recipientList(req.PhoneNumberSet), params)
	if s, ok := noAnswer(call); ok {
		return head + " " + s, []string{"no answer"}
	}
	var r struct {
		Response struct {
			Error         *struct{ Code, Message string }
			SendStatusSet []struct{ PhoneNumber, Code string }
		}
	}
	if json.Unmarshal(call.Response, &r) != nil {
		return fmt.Sprintf("%s %d %s", head, call.Status, strings.TrimSpace(string(call.Response))), []string{strconv.Itoa(call.Status)}
	}
	if e := r.Response.Error; e != nil {
		return fmt.Sprintf("%s %s %s", head, e.Code, e.Message), []string{e.Code}
	}
	counts := map[string]int{}
	var codes, failed []string
	for _, s := range r.Response.SendStatusSet {
		counts[s.Code]++
		codes = append(codes, s.Code)
		if s.Code != "Ok" {
			failed = append(failed, s.PhoneNumber+" "+s.Code)
		}
	}
	line := fmt.Sprintf("%s %s", head, CountList(counts))
	if len(failed) > 0 {
		line += " [" + strings.Join(failed, "; ") + "]"
	}
	return line, codes
}
