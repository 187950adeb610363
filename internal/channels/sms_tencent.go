package channels

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common"
	tcerr "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common/errors"
	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common/profile"
	tcsms "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/sms/v20210111"
)

func init() {
	Register(Spec{
		Name: "sms", Provider: "tencent",
		Doc: "SMS through Tencent Cloud (SendSms 2021-01-11): up to 200 numbers per call with identical template, sign and params " +
			"(TemplateParamSet in the order of params keys \"1\", \"2\", ...); one call per distinct content; each number's SendStatus decides its outcome.",
		MaxRecipients: 200, MaxMixed: 50, Groupable: true, TemplateCodeOnly: true,
		Address: AttrPhone,
		Config: []ConfigField{
			{Name: "secret_id", Doc: "the API SecretId", Required: true},
			{Name: "secret_key", Doc: "the API SecretKey", Required: true, Secret: true},
			{Name: "sdk_app_id", Doc: "the SMS SdkAppId", Required: true},
			{Name: "sign_name", Doc: "the approved sign (签名) used when a message gives none"},
			{Name: "endpoint", Doc: "the API endpoint host, or a URL with http:// for a local fake", Default: "sms.tencentcloudapi.com"},
			{Name: "region", Doc: "the region", Default: "ap-guangzhou"},
			{Name: "timeout", Doc: "how long one API call may take", Default: "10s"},
			{Name: "reply_token", Doc: "turns on POST /sms/replies?token=TOKEN on the public listener for Tencent's SMS reply callback (短信回复回调); replies such as TD or 退订 put the number on the suppression list (read by the HTTP server)", Secret: true},
			{Name: "concurrency", Doc: "API calls one send makes at once", Default: "4"},
		},
	}, newTencentSMS)
}

// tencentSMS sends through the official SDK, with the worker's transport,
// the context passed down, and the SDK's region breaker off (it would send
// to a backup host instead of the configured endpoint).
type tencentSMS struct {
	spec        Spec
	client      *tcsms.Client
	appID, sign string
	concurrency int
	log         *slog.Logger
	now         func() time.Time
}

func newTencentSMS(cfg map[string]any, deps Deps) (Channel, error) {
	spec, _, _ := Lookup("sms", "tencent")
	s := NewSettings(spec, cfg, deps.Logger)
	host, scheme := endpointParts(s.Str("endpoint"))
	timeout := s.Duration("timeout")
	conc := s.Integer("concurrency")
	s.Check(timeout > 0, "timeout: must be more than 0")
	s.Check(conc > 0, "concurrency: must be at least 1")
	s.Check(host != "", "endpoint: must not be empty")
	if err := s.Err(); err != nil {
		return nil, err
	}
	cp := profile.NewClientProfile()
	cp.HttpProfile.Endpoint = host
	cp.HttpProfile.Scheme = strings.ToUpper(scheme)
	cp.HttpProfile.ReqTimeout = int((timeout + time.Second - 1) / time.Second)
	cp.DisableRegionBreaker = true
	client, err := tcsms.NewClient(common.NewCredential(s.Str("secret_id"), s.Str("secret_key")), s.Str("region"), cp)
	if err != nil {
		return nil, errors.New("endpoint: " + err.Error())
	}
	var rt http.RoundTripper = http.DefaultTransport
	if deps.HTTP != nil && deps.HTTP.Transport != nil {
		rt = deps.HTTP.Transport
	}
	client.WithHttpTransport(statusRecorder{rt})
	return &tencentSMS{spec: spec, client: client, appID: s.Str("sdk_app_id"), sign: s.Str("sign_name"), concurrency: conc, log: deps.Logger, now: deps.Now}, nil
}

func (c *tencentSMS) Spec() Spec { return c.spec }

func (c *tencentSMS) Send(ctx context.Context, b Batch) ([]Outcome, error) {
	res := NewResults(len(b.Deliveries))
	phones := make([]phoneNumber, len(b.Deliveries))
	msgs := make([]smsMessage, len(b.Deliveries))
	var todo []int
	for i, d := range b.Deliveries {
		p, ok := parsePhone(d.Recipient.Address)
		switch {
		case d.Recipient.Address == "":
			res.Fail(i, &Error{Class: Permanent, Reason: ReasonNoAddress, Message: "no phone"})
			continue
		case !ok:
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
	// Tencent rejects calls mixing mainland and international numbers.
	var calls [][]int
	for _, g := range GroupByContent(Pick(b.Deliveries, todo), false) {
		var home, abroad []int
		for _, i := range Remap(todo, g) {
			if phones[i].mainland {
				home = append(home, i)
			} else {
				abroad = append(abroad, i)
			}
		}
		calls = append(calls, Chunks(home, c.spec.MaxRecipients)...)
		calls = append(calls, Chunks(abroad, c.spec.MaxRecipients)...)
	}
	Parallel(ctx, len(calls), c.concurrency, func(k int) { c.call(ctx, b, calls[k], phones, msgs[calls[k][0]], res) })
	return res.Finish()
}

func (c *tencentSMS) call(ctx context.Context, b Batch, idxs []int, phones []phoneNumber, m smsMessage, res *Results) {
	req := tcsms.NewSendSmsRequest()
	req.SmsSdkAppId = common.StringPtr(c.appID)
	req.SignName = common.StringPtr(m.sign)
	req.TemplateId = common.StringPtr(m.template)
	req.SessionContext = common.StringPtr(outID(b.Key))
	if ps := m.orderedParams(); len(ps) > 0 {
		req.TemplateParamSet = common.StringPtrs(ps)
	}
	byNumber := map[string][]int{}
	for _, i := range idxs {
		n := phones[i].e164()
		if _, dup := byNumber[n]; !dup {
			req.PhoneNumberSet = append(req.PhoneNumberSet, common.StringPtr(n))
		}
		byNumber[n] = append(byNumber[n], i)
	}
	var wrote atomic.Bool
	rec := &statusHolder{}
	cctx := httptrace.WithClientTrace(context.WithValue(ctx, statusKey{}, rec), &httptrace.ClientTrace{
		WroteRequest: func(info httptrace.WroteRequestInfo) {
			if info.Err == nil {
				wrote.Store(true)
			}
		},
	})
	resp, err := c.client.SendSmsWithContext(cctx, req)
	if err != nil {
		e := tencentCallError(err, wrote.Load(), int(rec.status.Load()), c.now())
		c.log.Warn("tencent sms call failed", "batch", b.Key, "numbers", len(byNumber), "class", e.Class, "reason", e.Reason, "code", e.Code)
		for _, i := range idxs {
			res.CallFailed(i, e)
		}
		return
	}
	seen := map[string]bool{}
	if resp.Response != nil {
		for _, st := range resp.Response.SendStatusSet {
			if st == nil || st.PhoneNumber == nil {
				continue
			}
			n := *st.PhoneNumber
			if p, ok := parsePhone(n); ok {
				n = p.e164()
			}
			seen[n] = true
			code, msg := deref(st.Code), deref(st.Message)
			for _, i := range byNumber[n] {
				if strings.EqualFold(code, "Ok") {
					res.Sent(i, deref(st.SerialNo))
				} else {
					res.Fail(i, tencentError(code, msg, c.now()))
				}
			}
		}
	}
	// A number the answer does not mention: Tencent took the call, so it
	// may have sent it.
	for n, is := range byNumber {
		if !seen[n] {
			for _, i := range is {
				res.Fail(i, &Error{Class: Ambiguous, Reason: ReasonServerError, Message: "no SendStatus for this number"})
			}
		}
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// tencentCallError classifies a failed call: an API error of the whole
// request, an HTTP status, or a transport failure.
func tencentCallError(err error, wrote bool, status int, now time.Time) *Error {
	var se *tcerr.TencentCloudSDKError
	if errors.As(err, &se) {
		switch {
		case strings.HasPrefix(se.Code, "ClientError.") && status > 0 && status != http.StatusOK:
			// a gateway's non-JSON error page: the status says what happened
			return StatusError(status, http.Header{}, now, nil)
		case se.Code == "ClientError.NetworkError" || se.Code == "ClientError.IOError":
			// the SDK keeps only the text of the transport error
			e := transportError(errors.New(se.Message), wrote)
			if m := strings.ToLower(se.Message); strings.Contains(m, "timeout") || strings.Contains(m, "deadline exceeded") {
				e.Reason = ReasonTimeout
			}
			return e
		case strings.HasPrefix(se.Code, "ClientError."):
			if wrote {
				return &Error{Class: Ambiguous, Reason: ReasonServerError, Code: se.Code, Message: se.Message}
			}
			return &Error{Class: RetryNow, Reason: ReasonTransport, Code: se.Code, Message: se.Message}
		}
		return tencentError(se.Code, se.Message, now)
	}
	return transportError(err, wrote)
}

// tencentError classifies a Tencent Cloud SMS code, for the whole call or
// one number's SendStatus.
func tencentError(code, msg string, now time.Time) *Error {
	e := &Error{Code: code, Message: msg}
	set := func(c Class, r string, after time.Duration) *Error {
		e.Class, e.Reason, e.RetryAfter = c, r, after
		return e
	}
	switch code {
	case "LimitExceeded.PhoneNumberThirtySecondLimit":
		return set(RetryLater, ReasonRateLimited, 30*time.Second)
	case "LimitExceeded.DeliveryFrequencyLimit":
		return set(RetryLater, ReasonRateLimited, 10*time.Minute)
	case "LimitExceeded.PhoneNumberOneHourLimit":
		return set(RetryLater, ReasonRateLimited, time.Hour)
	case "LimitExceeded.PhoneNumberDailyLimit", "LimitExceeded.PhoneNumberSameContentDailyLimit":
		return set(RetryLater, ReasonRateLimited, untilChinaHour(now, 0))
	case "LimitExceeded.AppDailyLimit", "LimitExceeded.AppGlobalDailyLimit", "LimitExceeded.AppMainlandChinaDailyLimit",
		"LimitExceeded.AppCountryOrRegionDailyLimit", "LimitExceeded.DailyLimit":
		return set(RetryLater, ReasonOverQuota, untilChinaHour(now, 0))
	case "FailedOperation.MarketingSendTimeConstraint": // marketing SMS only 08:00–22:00
		return set(RetryLater, ReasonQuietHours, untilChinaHour(now, 8))
	case "FailedOperation.InsufficientBalanceInSmsPackage", "UnauthorizedOperation.ServiceSuspendDueToArrears":
		return set(RetryLater, ReasonInsufficientBal, 10*time.Minute)
	case "RequestLimitExceeded", "RequestLimitExceeded.UinLimitExceeded", "LimitExceeded":
		return set(RetryLater, ReasonRateLimited, 2*time.Second)
	case "FailedOperation.PhoneNumberInBlacklist": // unsubscribed or complained: never again
		return set(Permanent, ReasonUnsubscribed, 0)
	case "InvalidParameterValue.IncorrectPhoneNumber", "FailedOperation.PhoneNumberParseFail":
		return set(Permanent, ReasonInvalidAddress, 0)
	case "FailedOperation.ContainSensitiveWord", "InvalidParameter.DirtyWordFound", "InvalidParameterValue.ProhibitedUseUrlInTemplateParameter",
		"InvalidParameterValue.TemplateWithDirtyWords":
		return set(Permanent, ReasonContentRejected, 0)
	case "FailedOperation.SignatureIncorrectOrUnapproved", "FailedOperation.MissingSignature", "FailedOperation.SignIdNotExist",
		"InvalidParameterValue.SignNameLengthTooLong", "InvalidParameterValue.SignExistAndUnapproved":
		return set(Permanent, ReasonInvalidSign, 0)
	case "FailedOperation.TemplateIncorrectOrUnapproved", "FailedOperation.TemplateUnapprovedOrNotExist", "FailedOperation.TemplateIdNotExist",
		"InvalidParameterValue.MarketingTemplateWithoutUnsubscribe", "UnsupportedOperation.ChineseMainlandTemplateToGlobalPhone",
		"UnsupportedOperation.GlobalTemplateToChineseMainlandPhone":
		return set(Permanent, ReasonInvalidTemplate, 0)
	case "FailedOperation.TemplateParamSetNotMatchApprovedTemplate", "InvalidParameterValue.TemplateParameterFormatError",
		"InvalidParameterValue.TemplateParameterLengthLimit", "InvalidParameterValue.ContentLengthLimit", "FailedOperation.JsonParseFail",
		"LimitExceeded.PhoneNumberCountLimit", "MissingParameter.EmptyPhoneNumberSet", "UnsupportedOperation.ContainDomesticAndInternationalPhoneNumber",
		"InvalidParameter", "InvalidParameter.InvalidParameters", "MissingParameter":
		return set(Permanent, ReasonInvalidParams, 0)
	case "InternalError.Timeout", "InternalError.SendAndRecvFail", "InternalError.RequestTimeException":
		// Tencent timed out towards the carrier: the message may be on its way.
		return set(Ambiguous, ReasonTimeout, 0)
	case "LimitExceeded.AppCountryOrRegionInBlacklist", "FailedOperation.NotEnterpriseCertification", "FailedOperation.ProhibitSubAccountUse",
		"InvalidParameterValue.SdkAppIdNotExist", "UnsupportedOperation.UnsupportedRegion":
		return set(Permanent, ReasonMisconfigured, 0)
	}
	switch {
	case strings.HasPrefix(code, "InternalError"):
		return set(RetryNow, ReasonServerError, 0)
	case strings.HasPrefix(code, "AuthFailure"), strings.HasPrefix(code, "UnauthorizedOperation"):
		return set(Permanent, ReasonMisconfigured, 0)
	case strings.HasPrefix(code, "LimitExceeded"):
		return set(RetryLater, ReasonRateLimited, time.Minute)
	}
	return set(Permanent, ReasonRejected, 0)
}

// statusRecorder notes the HTTP status for the SDK's calls: the SDK folds
// every non-200 status into one error string.
type statusRecorder struct{ next http.RoundTripper }

type statusKey struct{}

type statusHolder struct{ status atomic.Int64 }

func (s statusRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := s.next.RoundTrip(r)
	if resp != nil {
		if h, ok := r.Context().Value(statusKey{}).(*statusHolder); ok {
			h.status.Store(int64(resp.StatusCode))
		}
	}
	return resp, err
}
