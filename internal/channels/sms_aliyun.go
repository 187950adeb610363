package channels

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	openapi "github.com/alibabacloud-go/darabonba-openapi/v2/client"
	dysms "github.com/alibabacloud-go/dysmsapi-20170525/v4/client"
	teautil "github.com/alibabacloud-go/tea-utils/v2/service"
	"github.com/alibabacloud-go/tea/tea"
)

func init() {
	Register(Spec{
		Name: "sms", Provider: "aliyun", Default: true,
		Doc: "SMS through Aliyun (dysmsapi 2017-05-25): SendSms for up to 1000 numbers with identical template, sign and params; " +
			"SendBatchSms for up to 100 numbers with their own params or sign. Template codes come from the message, the sign from the message or sign_name.",
		MaxRecipients: 1000, MaxMixed: 100, Groupable: true, TemplateCodeOnly: true,
		Address: AttrPhone,
		Config: []ConfigField{
			{Name: "access_key_id", Doc: "the AccessKey ID of a RAM user allowed to send SMS", Required: true},
			{Name: "access_key_secret", Doc: "its AccessKey secret", Required: true, Secret: true},
			{Name: "sign_name", Doc: "the approved sign (签名) used when a message gives none"},
			{Name: "endpoint", Doc: "the API endpoint host, or a URL with http:// for a local fake", Default: "dysmsapi.aliyuncs.com"},
			{Name: "region", Doc: "the region id", Default: "cn-hangzhou"},
			{Name: "timeout", Doc: "how long one API call may take", Default: "10s"},
			{Name: "reply_token", Doc: "turns on POST /sms/replies?token=TOKEN on the public listener for Aliyun's SmsUp HTTP batch push (上行消息 HTTP 批量推送); replies such as TD or 退订 put the number on the suppression list (read by the HTTP server)", Secret: true},
			{Name: "concurrency", Doc: "API calls one send makes at once", Default: "4"},
		},
	}, newAliyunSMS)
}

// aliyunSMS sends through the official SDK. The SDK has no context and uses
// its own pooled transport (not Deps.HTTP); calls run with the configured
// timeouts, and a send that stops waiting on its context reports the call
// as ambiguous.
type aliyunSMS struct {
	spec Spec
	// clients holds SDK clients, one per call in flight: the SDK's client
	// records each response's headers in a field of its own (for
	// GetRpcHeaders), so concurrent calls on one client race.
	clients     sync.Pool
	sign        string
	concurrency int
	log         *slog.Logger
	now         func() time.Time
}

func newAliyunSMS(cfg map[string]any, deps Deps) (Channel, error) {
	spec, _, _ := Lookup("sms", "aliyun")
	s := NewSettings(spec, cfg, deps.Logger)
	id, secret := s.Str("access_key_id"), s.Str("access_key_secret")
	host, scheme := endpointParts(s.Str("endpoint"))
	timeout := s.Duration("timeout")
	conc := s.Integer("concurrency")
	s.Check(timeout > 0, "timeout: must be more than 0")
	s.Check(conc > 0, "concurrency: must be at least 1")
	s.Check(host != "", "endpoint: must not be empty")
	if err := s.Err(); err != nil {
		return nil, err
	}
	ms := int(timeout / time.Millisecond)
	region := s.Str("region")
	config := func() *openapi.Config { // NewClient writes into its config: one each
		return &openapi.Config{
			AccessKeyId: tea.String(id), AccessKeySecret: tea.String(secret),
			Endpoint: tea.String(host), Protocol: tea.String(scheme), RegionId: tea.String(region),
			ReadTimeout: tea.Int(ms), ConnectTimeout: tea.Int(ms), MaxIdleConns: tea.Int(2 * conc),
		}
	}
	client, err := dysms.NewClient(config())
	if err != nil {
		return nil, errors.New("endpoint: " + err.Error())
	}
	c := &aliyunSMS{spec: spec, sign: s.Str("sign_name"), concurrency: conc, log: deps.Logger, now: deps.Now}
	c.clients.New = func() any {
		cl, _ := dysms.NewClient(config()) // the same config just succeeded
		return cl
	}
	c.clients.Put(client)
	return c, nil
}

func (c *aliyunSMS) Spec() Spec { return c.spec }

// aliyunCall is one provider call: SendSms (identical content) or
// SendBatchSms (per-number sign and params, one template).
type aliyunCall struct {
	batch  bool
	idxs   []int
	phones []phoneNumber
	msgs   []smsMessage
}

func (c *aliyunSMS) Send(ctx context.Context, b Batch) ([]Outcome, error) {
	res := NewResults(len(b.Deliveries))
	phones := make([]phoneNumber, len(b.Deliveries))
	msgs := make([]smsMessage, len(b.Deliveries))
	var todo []int
	for i, d := range b.Deliveries {
		p, ok := parsePhone(d.Recipient.Address)
		if d.Recipient.Address == "" {
			res.Fail(i, &Error{Class: Permanent, Reason: ReasonNoAddress, Message: "no phone"})
			continue
		}
		if !ok {
			res.Fail(i, &Error{Class: Permanent, Reason: ReasonInvalidAddress, Message: "not a phone number: " + mask(d.Recipient.Address)})
			continue
		}
		m, e := smsContent(d.Message, c.sign)
		if e != nil {
			res.Fail(i, e)
			continue
		}
		phones[i], msgs[i] = p, m
		todo = append(todo, i)
	}
	// Identical content for two or more numbers is one SendSms; the rest go
	// personalised through SendBatchSms, grouped by template (one per call).
	var calls []aliyunCall
	singles := map[string][]int{}
	var templates []string
	for _, g := range GroupByContent(Pick(b.Deliveries, todo), false) {
		idxs := Remap(todo, g)
		if len(idxs) == 1 {
			t := msgs[idxs[0]].template
			if _, ok := singles[t]; !ok {
				templates = append(templates, t)
			}
			singles[t] = append(singles[t], idxs[0])
			continue
		}
		for _, ch := range Chunks(idxs, 1000) {
			calls = append(calls, c.call(false, ch, phones, msgs))
		}
	}
	for _, t := range templates {
		for _, ch := range Chunks(singles[t], 100) {
			calls = append(calls, c.call(true, ch, phones, msgs))
		}
	}
	budget := &callBudget{left: 64 + 2*len(calls)}
	Parallel(ctx, len(calls), c.concurrency, func(k int) { c.run(ctx, b, calls[k], res, budget) })
	return res.Finish()
}

func (c *aliyunSMS) call(batch bool, idxs []int, phones []phoneNumber, msgs []smsMessage) aliyunCall {
	cl := aliyunCall{batch: batch, idxs: idxs}
	for _, i := range idxs {
		cl.phones = append(cl.phones, phones[i])
		cl.msgs = append(cl.msgs, msgs[i])
	}
	return cl
}

// run makes a call; when Aliyun rejects a multi-number call for one
// number's sake (illegal number, refused, per-number flow control), nothing
// was sent, so the call is split in halves to find that number and send the
// others — within a budget of extra calls.
func (c *aliyunSMS) run(ctx context.Context, b Batch, cl aliyunCall, res *Results, budget *callBudget) {
	ref, e := c.send(ctx, b, cl)
	if e == nil {
		for _, i := range cl.idxs {
			res.Sent(i, ref)
		}
		return
	}
	if len(cl.idxs) > 1 && aliyunPerNumber(e.Code) && budget.take(2) {
		h := len(cl.idxs) / 2
		c.run(ctx, b, aliyunCall{batch: cl.batch, idxs: cl.idxs[:h], phones: cl.phones[:h], msgs: cl.msgs[:h]}, res, budget)
		c.run(ctx, b, aliyunCall{batch: cl.batch, idxs: cl.idxs[h:], phones: cl.phones[h:], msgs: cl.msgs[h:]}, res, budget)
		return
	}
	if len(cl.idxs) == 1 && aliyunPerNumber(e.Code) {
		res.Fail(cl.idxs[0], e)
	} else {
		for _, i := range cl.idxs {
			res.CallFailed(i, e)
		}
	}
	if e.Class != Permanent || len(cl.idxs) > 1 {
		c.log.Warn("aliyun sms call failed", "batch", b.Key, "numbers", len(cl.idxs), "first", mask(cl.phones[0].national), "class", e.Class, "reason", e.Reason, "code", e.Code)
	}
}

// callBudget bounds the extra calls splitting may make; parallel calls share it.
type callBudget struct {
	mu   sync.Mutex
	left int
}

func (b *callBudget) take(n int) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.left < n {
		return false
	}
	b.left -= n
	return true
}

// send makes one SDK call and returns Aliyun's BizId.
func (c *aliyunSMS) send(ctx context.Context, b Batch, cl aliyunCall) (string, *Error) {
	if err := ctx.Err(); err != nil { // the SDK cannot be stopped once started
		return "", &Error{Class: RetryNow, Reason: ReasonCanceled, Message: err.Error()}
	}
	outID := outID(b.Key)
	type result struct {
		ref, code, msg string
		err            error
	}
	done := make(chan result, 1)
	go func() {
		var r result
		client := c.clients.Get().(*dysms.Client)
		defer c.clients.Put(client)
		rt := &teautil.RuntimeOptions{}
		if cl.batch {
			phones := make([]string, len(cl.phones))
			signs := make([]string, len(cl.phones))
			params := make([]json.RawMessage, len(cl.phones))
			for k := range cl.phones {
				phones[k], signs[k] = cl.phones[k].national, cl.msgs[k].sign
				p := cl.msgs[k].paramsJSON()
				if p == "" {
					p = "{}"
				}
				params[k] = json.RawMessage(p)
			}
			pj, _ := json.Marshal(phones)
			sj, _ := json.Marshal(signs)
			tj, _ := json.Marshal(params)
			resp, err := client.SendBatchSmsWithOptions(&dysms.SendBatchSmsRequest{
				PhoneNumberJson: tea.String(string(pj)), SignNameJson: tea.String(string(sj)),
				TemplateCode: tea.String(cl.msgs[0].template), TemplateParamJson: tea.String(string(tj)),
				OutId: tea.String(outID),
			}, rt)
			r.err = err
			if err == nil && resp != nil && resp.Body != nil {
				r.ref, r.code, r.msg = tea.StringValue(resp.Body.BizId), tea.StringValue(resp.Body.Code), tea.StringValue(resp.Body.Message)
			}
		} else {
			nums := make([]string, len(cl.phones))
			for k, p := range cl.phones {
				nums[k] = p.national
			}
			req := &dysms.SendSmsRequest{
				PhoneNumbers: tea.String(strings.Join(nums, ",")), SignName: tea.String(cl.msgs[0].sign),
				TemplateCode: tea.String(cl.msgs[0].template), OutId: tea.String(outID),
			}
			if p := cl.msgs[0].paramsJSON(); p != "" {
				req.TemplateParam = tea.String(p)
			}
			resp, err := client.SendSmsWithOptions(req, rt)
			r.err = err
			if err == nil && resp != nil && resp.Body != nil {
				r.ref, r.code, r.msg = tea.StringValue(resp.Body.BizId), tea.StringValue(resp.Body.Code), tea.StringValue(resp.Body.Message)
			}
		}
		done <- r
	}()
	var r result
	select {
	case r = <-done:
	case <-ctx.Done():
		// The SDK call goes on until its own timeout; it may still send.
		return "", &Error{Class: Ambiguous, Reason: ReasonTimeout, Message: "stopped waiting for Aliyun: " + ctx.Err().Error()}
	}
	if r.err != nil {
		return "", aliyunSDKError(r.err, c.now())
	}
	if r.code != "OK" {
		return "", aliyunError(r.code, r.msg, c.now())
	}
	return r.ref, nil
}

// outID ties Aliyun's receipts to the batch without exceeding its length.
func outID(key string) string {
	if key == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:12])
}

// aliyunSDKError classifies an error the SDK returned: an API error with a
// code, or a transport failure.
func aliyunSDKError(err error, now time.Time) *Error {
	var se *tea.SDKError
	if errors.As(err, &se) {
		code := tea.StringValue(se.Code)
		status := tea.IntValue(se.StatusCode)
		if code != "" {
			e := aliyunError(code, tea.StringValue(se.Message), now)
			if e.Reason == ReasonRejected && status >= 500 {
				e.Class, e.Reason = RetryNow, ReasonServerError
			}
			return e
		}
		if status >= 500 {
			return &Error{Class: RetryNow, Reason: ReasonServerError, Message: err.Error()}
		}
		if status == 0 {
			// The SDK's own failures carry no status.
			return &Error{Class: Ambiguous, Reason: ReasonServerError, Message: err.Error()}
		}
		return &Error{Class: Permanent, Reason: ReasonRejected, Message: err.Error()}
	}
	err = redactURL(err) // the query holds phone numbers
	// No trace into the SDK's transport, and no status when the answer is
	// not JSON (a gateway's error page): a failed dial sent nothing; any
	// later failure may have reached Aliyun, so it is ambiguous.
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return &Error{Class: RetryNow, Reason: ReasonTransport, Message: err.Error()}
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return &Error{Class: Ambiguous, Reason: ReasonTimeout, Message: err.Error()}
	}
	return &Error{Class: Ambiguous, Reason: ReasonConnectionLost, Message: err.Error()}
}

// aliyunPerNumber lists codes that one number in a call can cause.
func aliyunPerNumber(code string) bool {
	switch code {
	case "isv.MOBILE_NUMBER_ILLEGAL", "isv.PHONE_NUMBER_ILLEGAL", "isv.CUSTOMER_REFUSED", "isv.DOMESTIC_NUMBER_NOT_SUPPORTED",
		"isv.BUSINESS_LIMIT_CONTROL", "isv.BUSINESS_LIMIT_CONTROL_MINUTE", "isv.BUSINESS_LIMIT_HOUR", "isv.BUSINESS_LIMIT_DAY":
		return true
	}
	return false
}

// aliyunError classifies an Aliyun SMS API code.
func aliyunError(code, msg string, now time.Time) *Error {
	e := &Error{Code: code, Message: msg}
	set := func(c Class, r string, after time.Duration) *Error {
		e.Class, e.Reason, e.RetryAfter = c, r, after
		return e
	}
	switch code {
	case "isv.BUSINESS_LIMIT_CONTROL_MINUTE":
		return set(RetryLater, ReasonRateLimited, time.Minute)
	case "isv.BUSINESS_LIMIT_CONTROL", "isv.BUSINESS_LIMIT_HOUR":
		// per-number flow control (1/min, 5/h, 10/day for codes; 50/day for notices)
		return set(RetryLater, ReasonRateLimited, time.Hour)
	case "isv.BUSINESS_LIMIT_DAY", "isv.DAY_LIMIT_CONTROL":
		return set(RetryLater, ReasonOverQuota, untilChinaHour(now, 0))
	case "isv.MONTH_LIMIT_CONTROL":
		return set(RetryLater, ReasonOverQuota, 24*time.Hour)
	case "isv.AMOUNT_NOT_ENOUGH", "isv.OUT_OF_SERVICE":
		return set(RetryLater, ReasonInsufficientBal, 10*time.Minute)
	case "Throttling", "Throttling.User", "Throttling.Api":
		return set(RetryLater, ReasonRateLimited, 2*time.Second)
	case "isp.SYSTEM_ERROR", "isp.GATEWAY_ERROR", "isp.UNKNOWN", "InternalError", "UnknownError", "ServiceUnavailable":
		return set(RetryNow, ReasonServerError, 0)
	case "isv.MOBILE_NUMBER_ILLEGAL", "isv.PHONE_NUMBER_ILLEGAL", "isv.DOMESTIC_NUMBER_NOT_SUPPORTED", "isv.NOT_SUPPORTED_COUNTRY":
		return set(Permanent, ReasonInvalidAddress, 0)
	case "isv.CUSTOMER_REFUSED": // the number has unsubscribed from marketing SMS
		return set(Permanent, ReasonUnsubscribed, 0)
	case "isv.BLACK_KEY_CONTROL_LIMIT", "isv.SMS_CONTENT_ILLEGAL", "isv.PARAM_NOT_SUPPORT_URL", "isv.TEMPLATE_PARAMS_ILLEGAL":
		return set(Permanent, ReasonContentRejected, 0)
	case "isv.SMS_TEMPLATE_ILLEGAL", "isv.SMS_SIGNATURE_SCENE_ILLEGAL", "isv.SMS_CONTENT_CODE_ILLEGAL", "isv.SMS_CONTENTCODE_ILLEGAL":
		return set(Permanent, ReasonInvalidTemplate, 0)
	case "isv.SMS_SIGNATURE_ILLEGAL", "isv.SIGN_NAME_ILLEGAL", "isv.SMS_SIGN_ILLEGAL", "isv.SMS_SIGN_NAME_ILLEGAL":
		return set(Permanent, ReasonInvalidSign, 0)
	case "isv.TEMPLATE_MISSING_PARAMETERS", "isv.INVALID_JSON_PARAM", "isv.PARAM_LENGTH_LIMIT", "isv.INVALID_PARAMETERS",
		"isv.MOBILE_COUNT_OVER_LIMIT", "isv.PHONE_NUMBER_COUNT_OVER_LIMIT", "MissingPhoneNumbers", "MissingSignName", "MissingTemplateCode":
		return set(Permanent, ReasonInvalidParams, 0)
	case "isp.RAM_PERMISSION_DENY", "isv.PRODUCT_UN_SUBSCRIPT", "isv.PRODUCT_UNSUBSCRIBE", "isv.ACCOUNT_NOT_EXISTS", "isv.ACCOUNT_ABNORMAL",
		"isv.DENY_IP_RANGE", "isv.EXTEND_CODE_ERROR", "InvalidAccessKeyId.NotFound", "InvalidAccessKeyId.Inactive", "SignatureDoesNotMatch",
		"IncompleteSignature", "Forbidden.RAM", "Forbidden.AccessKeyDisabled", "InvalidTimeStamp.Expired":
		return set(Permanent, ReasonMisconfigured, 0)
	}
	return set(Permanent, ReasonRejected, 0)
}
