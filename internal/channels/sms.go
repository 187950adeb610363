package channels

import (
	"encoding/json"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/huabu/huabu/internal/canvases"
)

// The two SMS providers are one `sms` channel to the engine: the same name,
// address (phone) and message fields (template, params, sign_name). Their
// limits differ and each channel's Spec says which: Aliyun takes 1000
// identical numbers (SendSms) or 100 personalised ones (SendBatchSms) per
// call, Tencent 200 identical numbers and one call per distinct content.

// smsMessage is what an SMS delivery needs, checked before any call.
type smsMessage struct {
	template string
	sign     string
	params   map[string]string
}

func smsContent(m *canvases.Message, defaultSign string) (smsMessage, *Error) {
	if m == nil || m.Template == "" {
		return smsMessage{}, &Error{Class: Permanent, Reason: ReasonInvalidTemplate, Message: "sms needs a provider template code (template)"}
	}
	sign := m.SignName
	if sign == "" {
		sign = defaultSign
	}
	if sign == "" {
		return smsMessage{}, &Error{Class: Permanent, Reason: ReasonInvalidSign, Message: "no sign_name in the message or in channels.sms"}
	}
	return smsMessage{template: m.Template, sign: sign, params: m.Params}, nil
}

// paramsJSON is Aliyun's TemplateParam: a JSON object of strings.
func (s smsMessage) paramsJSON() string {
	if len(s.params) == 0 {
		return ""
	}
	b, _ := json.Marshal(s.params) // sorted keys
	return string(b)
}

// orderedParams is Tencent's TemplateParamSet: template variables are {1},
// {2}, ... so params keyed "1", "2", ... are sent in numeric order; other
// keys are sent in name order.
func (s smsMessage) orderedParams() []string {
	keys := make([]string, 0, len(s.params))
	numeric := true
	for k := range s.params {
		keys = append(keys, k)
		if _, err := strconv.Atoi(k); err != nil {
			numeric = false
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		if numeric {
			a, _ := strconv.Atoi(keys[i])
			b, _ := strconv.Atoi(keys[j])
			return a < b
		}
		return keys[i] < keys[j]
	})
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = s.params[k]
	}
	return out
}

var (
	mainlandRE = regexp.MustCompile(`^(?:\+?86|0086)?(1[3-9]\d{9})$`)
	intlRE     = regexp.MustCompile(`^(?:\+|00)?([1-9]\d{6,14})$`)
	phoneStrip = strings.NewReplacer(" ", "", "-", "", "(", "", ")", "")
)

// phoneNumber is a recipient's number in the two forms providers want.
type phoneNumber struct {
	national string // mainland: 11 digits; else country code + number, no '+'
	mainland bool
}

// e164 is Tencent's form: +86... or +<country><number>.
func (p phoneNumber) e164() string {
	if p.mainland {
		return "+86" + p.national
	}
	return "+" + p.national
}

// parsePhone accepts mainland numbers with or without +86/0086/86 and
// international numbers written with their country code.
func parsePhone(s string) (phoneNumber, bool) {
	s = phoneStrip.Replace(strings.TrimSpace(s))
	if m := mainlandRE.FindStringSubmatch(s); m != nil {
		return phoneNumber{national: m[1], mainland: true}, true
	}
	if strings.HasPrefix(s, "+") || strings.HasPrefix(s, "00") {
		if m := intlRE.FindStringSubmatch(s); m != nil {
			return phoneNumber{national: m[1]}, true
		}
	}
	return phoneNumber{}, false
}

// chinaTime is UTC+8 without tzdata: SMS quotas and marketing hours follow
// Beijing time.
var chinaTime = time.FixedZone("CST", 8*3600)

// untilChinaHour is the wait until the next hh:00 Beijing time.
func untilChinaHour(now time.Time, hour int) time.Duration {
	t := now.In(chinaTime)
	next := time.Date(t.Year(), t.Month(), t.Day(), hour, 0, 0, 0, chinaTime)
	if !next.After(t) {
		next = next.AddDate(0, 0, 1)
	}
	return next.Sub(t)
}

// endpointParts splits a configured endpoint ("dysmsapi.aliyuncs.com" or
// "http://127.0.0.1:8080") into host and scheme.
func endpointParts(ep string) (host, scheme string) {
	if strings.Contains(ep, "://") {
		if u, err := url.Parse(ep); err == nil && u.Host != "" {
			return u.Host, u.Scheme
		}
	}
	return strings.TrimRight(ep, "/"), "https"
}
