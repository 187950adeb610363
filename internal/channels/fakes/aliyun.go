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
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// AliyunSMS is a fake of Aliyun's dysmsapi (2017-05-25) SendSms and
// SendBatchSms as the v4 SDK calls them: POST / with x-acs-action and
// x-acs-version headers, signed ACS3-HMAC-SHA256 (the signature is checked
// against the configured AccessKey), answering {"Code":"OK",...} or the real
// error codes.
type AliyunSMS struct {
	base
	AccessKeyID, AccessKeySecret string
	// Templates, when set, are the approved template codes with the
	// parameter names each needs.
	Templates map[string][]string
	// Signs, when set, are the approved sign names.
	Signs map[string]bool
	// Refused numbers have unsubscribed (isv.CUSTOMER_REFUSED).
	Refused map[string]bool
	// Invalid numbers are well-formed but refused as illegal
	// (isv.MOBILE_NUMBER_ILLEGAL), like malformed ones.
	Invalid map[string]bool

	mu   sync.Mutex
	n    int
	sent []SMS
}

// SMS is one message the fake accepted.
type SMS struct {
	Phone, Sign, Template string
	Params                map[string]string
	BizID                 string
}

var aliyunPhoneRE = regexp.MustCompile(`^(?:\+?86|0086)?1[3-9]\d{9}$|^[1-9]\d{6,14}$`)

// NewAliyunSMS starts an Aliyun SMS fake for one AccessKey.
func NewAliyunSMS(accessKeyID, accessKeySecret string) *AliyunSMS {
	f := &AliyunSMS{AccessKeyID: accessKeyID, AccessKeySecret: accessKeySecret}
	f.init()
	f.srv = httptest.NewServer(http.HandlerFunc(f.handle))
	return f
}

// Endpoint is the value for channels.sms.endpoint.
func (f *AliyunSMS) Endpoint() string { return f.srv.URL }

func aliyunJSON(w http.ResponseWriter, status int, code, msg string, extra map[string]any) {
	m := map[string]any{"Code": code, "Message": msg, "RequestId": "FAKE-REQUEST-ID"}
	for k, v := range extra {
		m[k] = v
	}
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(m)
}

func (f *AliyunSMS) handle(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.record(r, body)
	if r.Method != http.MethodPost || r.URL.Path != "/" {
		aliyunJSON(w, 404, "InvalidAction.NotFound", "Specified api is not found", nil)
		return
	}
	if code, msg := f.verify(r, body); code != "" {
		status := 400
		if code == "InvalidAccessKeyId.NotFound" {
			status = 404
		}
		aliyunJSON(w, status, code, msg, nil)
		return
	}
	if v := r.Header.Get("x-acs-version"); v != "2017-05-25" {
		aliyunJSON(w, 400, "InvalidVersion", "Specified parameter Version is not valid.", nil)
		return
	}
	action := r.Header.Get("x-acs-action")
	if action != "SendSms" && action != "SendBatchSms" {
		aliyunJSON(w, 404, "InvalidAction.NotFound", "Specified api is not found", nil)
		return
	}
	form, _ := url.ParseQuery(string(body))
	q := r.URL.Query()
	get := func(k string) string {
		if v := q.Get(k); v != "" {
			return v
		}
		return form.Get(k)
	}
	var msgs []SMS
	var code, msg string
	if action == "SendSms" {
		msgs, code, msg = f.parseSendSms(get)
	} else {
		msgs, code, msg = f.parseBatch(get)
	}
	if code != "" {
		aliyunJSON(w, 200, code, msg, nil)
		return
	}
	switch f.Next() {
	case RateLimit:
		aliyunJSON(w, 200, "isv.BUSINESS_LIMIT_CONTROL", "触发分钟级流控Permits:1", nil)
		return
	case ServerError:
		aliyunJSON(w, 500, "isp.SYSTEM_ERROR", "isp.SYSTEM_ERROR", nil)
		return
	case HTTP5xx: // Aliyun's gateway answers 503 in its JSON error shape
		aliyunJSON(w, http.StatusServiceUnavailable, "ServiceUnavailable", "The request has failed due to a temporary failure of the server.", nil)
		return
	case Timeout:
		f.hang(r)
		return
	case TimeoutAfterDelivery:
		f.deliver(msgs)
		f.hang(r)
		return
	}
	biz := f.deliver(msgs)
	aliyunJSON(w, 200, "OK", "OK", map[string]any{"BizId": biz})
}

func (f *AliyunSMS) deliver(msgs []SMS) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	biz := fmt.Sprintf("%d^0", 900000000+f.n)
	for _, m := range msgs {
		m.BizID = biz
		f.sent = append(f.sent, m)
		f.add(m.Phone)
	}
	return biz
}

// refused reads Refused, which Reply may add to while sends are checked.
func (f *AliyunSMS) refused(phone string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.Refused[phone]
}

// Sent lists the messages accepted, in order.
func (f *AliyunSMS) Sent() []SMS {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]SMS(nil), f.sent...)
}

func (f *AliyunSMS) check(phone, sign, tmpl string, params map[string]string) (string, string) {
	switch {
	case !aliyunPhoneRE.MatchString(phone) || f.Invalid[phone]:
		return "isv.MOBILE_NUMBER_ILLEGAL", "非法手机号"
	case f.refused(phone):
		return "isv.CUSTOMER_REFUSED", "用户已退订推广短信"
	case f.Signs != nil && !f.Signs[sign]:
		return "isv.SMS_SIGNATURE_ILLEGAL", "该账号下找不到对应签名"
	}
	if f.Templates != nil {
		need, ok := f.Templates[tmpl]
		if !ok {
			return "isv.SMS_TEMPLATE_ILLEGAL", "该账号下找不到对应模板"
		}
		for _, p := range need {
			if _, ok := params[p]; !ok {
				return "isv.TEMPLATE_MISSING_PARAMETERS", "模版缺少变量"
			}
		}
	}
	return "", ""
}

func (f *AliyunSMS) parseSendSms(get func(string) string) ([]SMS, string, string) {
	phones := strings.Split(get("PhoneNumbers"), ",")
	sign, tmpl := get("SignName"), get("TemplateCode")
	switch {
	case get("PhoneNumbers") == "":
		return nil, "MissingPhoneNumbers", "PhoneNumbers is mandatory for this action."
	case sign == "":
		return nil, "MissingSignName", "SignName is mandatory for this action."
	case tmpl == "":
		return nil, "MissingTemplateCode", "TemplateCode is mandatory for this action."
	case len(phones) > 1000:
		return nil, "isv.MOBILE_COUNT_OVER_LIMIT", "手机号码数量超过限制"
	}
	params := map[string]string{}
	if p := get("TemplateParam"); p != "" {
		if json.Unmarshal([]byte(p), &params) != nil {
			return nil, "isv.INVALID_JSON_PARAM", "JSON参数不合法，只接受字符串值"
		}
	}
	var out []SMS
	for _, ph := range phones {
		if code, msg := f.check(ph, sign, tmpl, params); code != "" {
			return nil, code, msg
		}
		out = append(out, SMS{Phone: ph, Sign: sign, Template: tmpl, Params: params})
	}
	return out, "", ""
}

func (f *AliyunSMS) parseBatch(get func(string) string) ([]SMS, string, string) {
	var phones, signs []string
	var params []map[string]string
	tmpl := get("TemplateCode")
	if json.Unmarshal([]byte(get("PhoneNumberJson")), &phones) != nil || json.Unmarshal([]byte(get("SignNameJson")), &signs) != nil {
		return nil, "isv.INVALID_JSON_PARAM", "JSON参数不合法"
	}
	if p := get("TemplateParamJson"); p != "" && json.Unmarshal([]byte(p), &params) != nil {
		return nil, "isv.INVALID_JSON_PARAM", "JSON参数不合法，只接受字符串值"
	}
	switch {
	case tmpl == "":
		return nil, "MissingTemplateCode", "TemplateCode is mandatory for this action."
	case len(phones) == 0:
		return nil, "MissingPhoneNumberJson", "PhoneNumberJson is mandatory for this action."
	case len(phones) > 100:
		return nil, "isv.MOBILE_COUNT_OVER_LIMIT", "手机号码数量超过限制"
	case len(signs) != len(phones) || (params != nil && len(params) != len(phones)):
		return nil, "isv.INVALID_PARAMETERS", "参数异常: PhoneNumberJson, SignNameJson and TemplateParamJson differ in length"
	}
	var out []SMS
	for k, ph := range phones {
		p := map[string]string{}
		if params != nil {
			p = params[k]
		}
		if code, msg := f.check(ph, signs[k], tmpl, p); code != "" {
			return nil, code, msg
		}
		out = append(out, SMS{Phone: ph, Sign: signs[k], Template: tmpl, Params: p})
	}
	return out, "", ""
}

// verify checks the ACS3-HMAC-SHA256 signature the way Aliyun does:
// canonical request of method, path, sorted query, the signed headers and
// the payload hash, signed with the AccessKey secret.
func (f *AliyunSMS) verify(r *http.Request, body []byte) (string, string) {
	auth := r.Header.Get("Authorization")
	if auth == "" {
		// the older RPC style signs in the query
		q := r.URL.Query()
		if q.Get("AccessKeyId") == "" || q.Get("SignatureMethod") == "" || q.Get("Signature") == "" {
			return "MissingAccessKeyId", "AccessKeyId is mandatory for this action."
		}
		if q.Get("AccessKeyId") != f.AccessKeyID {
			return "InvalidAccessKeyId.NotFound", "Specified access key is not found."
		}
		return "", ""
	}
	const algo = "ACS3-HMAC-SHA256 "
	if !strings.HasPrefix(auth, algo) {
		return "IncompleteSignature", "The request signature does not conform to Aliyun standards."
	}
	parts := map[string]string{}
	for _, kv := range strings.Split(strings.TrimPrefix(auth, algo), ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		parts[k] = v
	}
	if parts["Credential"] != f.AccessKeyID {
		return "InvalidAccessKeyId.NotFound", "Specified access key is not found."
	}
	payloadHash := sha256.Sum256(body)
	if r.Header.Get("x-acs-content-sha256") != hex.EncodeToString(payloadHash[:]) {
		return "IncompleteSignature", "x-acs-content-sha256 does not match the body"
	}
	signed := strings.Split(parts["SignedHeaders"], ";")
	var ch strings.Builder
	for _, h := range signed {
		v := r.Header.Get(h)
		if h == "host" {
			v = r.Host
		}
		ch.WriteString(h + ":" + strings.TrimSpace(v) + "\n")
	}
	q := r.URL.Query()
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var cq []string
	for _, k := range keys {
		cq = append(cq, k+"="+url.QueryEscape(q.Get(k)))
	}
	canonQuery := strings.NewReplacer("+", "%20", "*", "%2A", "%7E", "~").Replace(strings.Join(cq, "&"))
	canon := r.Method + "\n" + r.URL.Path + "\n" + canonQuery + "\n" + ch.String() + "\n" + parts["SignedHeaders"] + "\n" + hex.EncodeToString(payloadHash[:])
	h := sha256.Sum256([]byte(canon))
	mac := hmac.New(sha256.New, []byte(f.AccessKeySecret))
	mac.Write([]byte("ACS3-HMAC-SHA256\n" + hex.EncodeToString(h[:])))
	if !hmac.Equal([]byte(hex.EncodeToString(mac.Sum(nil))), []byte(parts["Signature"])) {
		return "SignatureDoesNotMatch", "Specified signature is not matched with our calculation."
	}
	return "", ""
}

func init() {
	RegisterStandalone(Standalone{
		Name: "aliyun", Title: "Aliyun SMS", Addr: "127.0.0.1:9002", Unit: "numbers",
		Doc:       "Aliyun SMS dysmsapi: SendSms, SendBatchSms",
		FailKinds: []string{"invalid", "refused"},
		FailDoc:   "phone numbers: invalid (isv.MOBILE_NUMBER_ILLEGAL), refused (isv.CUSTOMER_REFUSED)",
		FailKind: func(k string) (string, bool) {
			if k == "unsubscribed" {
				k = "refused"
			}
			return k, k == "invalid" || k == "refused"
		},
		Start: func(o StandaloneOptions) (*Running, error) {
			f, err := NewAliyunSMSAt(o.Addr, o.Key, o.Secret)
			if err != nil {
				return nil, err
			}
			f.Invalid, f.Refused = map[string]bool{}, map[string]bool{}
			for r, k := range o.Fails {
				n := nationalNumber(r)
				if k == "refused" {
					f.Refused[n] = true
				} else {
					f.Invalid[n] = true
				}
			}
			return &Running{URL: f.URL(), Close: f.Close, OnCall: f.OnCall, Faults: &f.Faults, Ledger: &f.Ledger, Summarize: aliyunCallLine,
				Config: fmt.Sprintf(`sms: {provider: aliyun, access_key_id: %s, access_key_secret: %s, sign_name: 华布, endpoint: "%s"}`, o.Key, o.Secret, f.URL())}, nil
		},
	})
}

func aliyunCallLine(call Call) (string, []string) {
	form, _ := url.ParseQuery(string(call.Body))
	get := func(k string) string {
		if v := call.Query[k]; len(v) > 0 && v[0] != "" {
			return v[0]
		}
		return form.Get(k)
	}
	action := call.Header.Get("x-acs-action")
	var phones []string
	params := ""
	if action == "SendBatchSms" {
		_ = json.Unmarshal([]byte(get("PhoneNumberJson")), &phones)
		var ps []json.RawMessage
		if json.Unmarshal([]byte(get("TemplateParamJson")), &ps) == nil && len(ps) == 1 {
			params = " " + string(ps[0])
		}
	} else {
		phones = splitComma(get("PhoneNumbers"))
		if p := get("TemplateParam"); p != "" {
			params = " " + p
		}
	}
	head := fmt.Sprintf("aliyun %s %s %s%s →", action, get("TemplateCode"), recipientList(phones), params)
	if s, ok := noAnswer(call); ok {
		return head + " " + s, []string{"no answer"}
	}
	var r struct{ Code, Message, BizId string }
	if json.Unmarshal(call.Response, &r) != nil || r.Code == "" {
		return fmt.Sprintf("%s %d %s", head, call.Status, strings.TrimSpace(string(call.Response))), []string{strconv.Itoa(call.Status)}
	}
	if r.Code == "OK" {
		return fmt.Sprintf("%s OK BizId %s", head, r.BizId), []string{"OK"}
	}
	return fmt.Sprintf("%s %s %s", head, r.Code, r.Message), []string{r.Code}
}
