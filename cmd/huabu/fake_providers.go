package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/huabu/huabu/channels/fakes"
)

// `huabu fake aliyun|tencent|jpush|webhook` runs the SMS, push and webhook
// fakes of channels/fakes standalone, so `huabu dev` can send through the
// real channel code to this machine (examples/huabu-fakes.yaml). Each call
// the fake answers is printed as one line; counts are printed on exit.

// providerFakePorts are the default addresses, next to the WeCom fake's 9001;
// examples/huabu-fakes.yaml points at them.
var providerFakePorts = map[string]string{
	"aliyun":  "127.0.0.1:9002",
	"tencent": "127.0.0.1:9003",
	"jpush":   "127.0.0.1:9004",
	"webhook": "127.0.0.1:9005",
}

// failKinds are the permanent failures --fail can script per provider; the
// first is the default.
var failKinds = map[string][]string{
	"aliyun":  {"invalid", "refused"},
	"tencent": {"blacklisted", "invalid", "throttled"},
	"jpush":   {"no_device"},
	"webhook": {"410", "400", "403", "404", "422"},
}

const providerFakeLong = `Run a provider fake standalone, for trying Huabu's real channels on one machine.

  huabu fake wecom     WeCom (see --confirm, --ack; listens on 127.0.0.1:9001)
  huabu fake aliyun    Aliyun SMS dysmsapi: SendSms, SendBatchSms (127.0.0.1:9002)
  huabu fake tencent   Tencent Cloud SMS SendSms (127.0.0.1:9003)
  huabu fake jpush     JPush REST v3 push and cid (127.0.0.1:9004)
  huabu fake webhook   a receiver that checks Huabu's webhook signature (127.0.0.1:9005)

The fakes check credentials and signatures like the providers: --key and --secret
must match the channel config (examples/huabu-fakes.yaml uses the defaults). Every
call is printed as one line; Ctrl-C prints the counts.

--fail RECIPIENT[=KIND],... (or a file with one RECIPIENT [KIND] a line) makes
those recipients fail for good, with the provider's real code:
  aliyun   phone numbers: invalid (isv.MOBILE_NUMBER_ILLEGAL), refused (isv.CUSTOMER_REFUSED)
  tencent  phone numbers: blacklisted (FailedOperation.PhoneNumberInBlacklist),
           invalid (InvalidParameterValue.IncorrectPhoneNumber), throttled
  jpush    aliases or registration ids: no_device (1011: no device bound)
  webhook  user ids: an HTTP status, 410 by default
--fail-rate injects --faults into that share of calls (seeded by --seed).`

// addProviderFakeFlags adds the flags of the SMS, push and webhook fakes to
// the fake command (--listen and --secret are shared with the WeCom fake).
func (c *cli) addProviderFakeFlags(cmd *cobra.Command) {
	cmd.Use = "fake wecom|aliyun|tencent|jpush|webhook"
	cmd.Long = providerFakeLong
	f := cmd.Flags()
	if l := f.Lookup("listen"); l != nil {
		l.Usage = "address to listen on: wecom's default; aliyun 127.0.0.1:9002, tencent :9003, jpush :9004, webhook :9005"
	}
	f.String("key", "demo-key", "aliyun, tencent, jpush: the key the fake accepts (AccessKey ID, SecretId, AppKey); the secret is --secret")
	f.String("sdk-app-id", "1400000001", "tencent: the SmsSdkAppId the fake accepts")
	f.String("fail", "", "recipients that always fail, as RECIPIENT[=KIND],... or a file (see above)")
	f.Float64("fail-rate", 0, "share of calls (0 to 1) answered with an injected fault from --faults")
	f.String("faults", "server_error,http_5xx", "faults --fail-rate injects: server_error, http_5xx, rate_limit, timeout, timeout_after_delivery")
	f.Int64("seed", 1, "seed of --fail-rate")
}

// providerFake is a running fake with what the command needs of it.
type providerFake struct {
	url, config string
	close       func()
	onCall      func(func(fakes.Call))
	faults      *fakes.Faults
	ledger      *fakes.Ledger
	summarize   func(fakes.Call) (line string, codes []string)
}

func (c *cli) runProviderFake(cmd *cobra.Command, kind string) error {
	if _, ok := providerFakePorts[kind]; !ok {
		return userErrorf("fake %q: use wecom, aliyun, tencent, jpush or webhook", kind)
	}
	fl := cmd.Flags()
	listen, _ := fl.GetString("listen")
	if !fl.Changed("listen") {
		listen = providerFakePorts[kind]
	}
	secret, _ := fl.GetString("secret")
	key, _ := fl.GetString("key")
	sdkAppID, _ := fl.GetString("sdk-app-id")
	failSpec, _ := fl.GetString("fail")
	rate, _ := fl.GetFloat64("fail-rate")
	faultList, _ := fl.GetString("faults")
	seed, _ := fl.GetInt64("seed")

	fails, err := parseFails(failSpec, kind)
	if err != nil {
		return userError{err}
	}
	if rate < 0 || rate > 1 {
		return userErrorf("--fail-rate %v: give a share between 0 and 1", rate)
	}
	var kinds []fakes.Fault
	for _, name := range splitList(faultList) {
		k, ok := faultByName(name)
		if !ok {
			return userErrorf("--faults: %q is not server_error, http_5xx, rate_limit, timeout or timeout_after_delivery", name)
		}
		kinds = append(kinds, k)
	}
	if rate > 0 && len(kinds) == 0 {
		return userErrorf("--fail-rate needs --faults")
	}

	p, err := startProviderFake(kind, listen, key, secret, sdkAppID, fails)
	if err != nil {
		return userErrorf("--listen %s: %v", listen, err)
	}
	defer p.close()
	if rate > 0 {
		p.faults.Random(seed, rate, kinds...)
	}

	var mu sync.Mutex
	calls := 0
	answers := map[string]int{}
	p.onCall(func(call fakes.Call) {
		line, codes := p.summarize(call)
		mu.Lock()
		defer mu.Unlock()
		calls++
		for _, code := range codes {
			answers[code]++
		}
		fmt.Fprintf(c.stdout, "%s %s\n", time.Now().Format("15:04:05.000"), line)
	})

	fmt.Fprintf(c.stdout, "%s fake listening on %s\n", providerTitle[kind], p.url)
	if len(fails) > 0 {
		fmt.Fprintf(c.stdout, "  failing for good: %s\n", describeFails(fails))
	}
	if rate > 0 {
		fmt.Fprintf(c.stdout, "  injecting %s into %.0f%% of calls (seed %d)\n", faultList, rate*100, seed)
	}
	fmt.Fprintf(c.stdout, "  channels:\n    %s\n", p.config)

	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()

	mu.Lock()
	defer mu.Unlock()
	delivered := p.ledger.Delivered()
	unit := map[string]string{"aliyun": "numbers", "tencent": "numbers", "jpush": "aliases or registration ids", "webhook": "users"}[kind]
	fmt.Fprintf(c.stdout, "%s fake: %d calls; delivered %d messages to %d %s", kind, calls, p.ledger.Total(), len(delivered), unit)
	if dups := p.ledger.Duplicates(); len(dups) > 0 {
		fmt.Fprintf(c.stdout, " (%d got more than one)", len(dups))
	}
	fmt.Fprintf(c.stdout, "\n  answers: %s\n", countList(answers))
	injected := map[string]int{}
	for k, n := range p.faults.Injected() {
		injected[k.String()] = n
	}
	if len(injected) > 0 {
		fmt.Fprintf(c.stdout, "  injected faults: %s\n", countList(injected))
	}
	return nil
}

var providerTitle = map[string]string{"aliyun": "Aliyun SMS", "tencent": "Tencent Cloud SMS", "jpush": "JPush", "webhook": "Webhook"}

func faultByName(name string) (fakes.Fault, bool) {
	for f := fakes.RateLimit; f <= fakes.TimeoutAfterDelivery; f++ {
		if f.String() == name {
			return f, true
		}
	}
	return fakes.None, false
}

// startProviderFake starts one fake on addr with --fail applied.
func startProviderFake(kind, addr, key, secret, sdkAppID string, fails map[string]string) (*providerFake, error) {
	switch kind {
	case "aliyun":
		f, err := fakes.NewAliyunSMSAt(addr, key, secret)
		if err != nil {
			return nil, err
		}
		f.Invalid, f.Refused = map[string]bool{}, map[string]bool{}
		for r, k := range fails {
			n := nationalNumber(r)
			if k == "refused" {
				f.Refused[n] = true
			} else {
				f.Invalid[n] = true
			}
		}
		return &providerFake{url: f.URL(), close: f.Close, onCall: f.OnCall, faults: &f.Faults, ledger: &f.Ledger, summarize: aliyunCallLine,
			config: fmt.Sprintf(`sms: {provider: aliyun, access_key_id: %s, access_key_secret: %s, sign_name: 华布, endpoint: "%s"}`, key, secret, f.URL())}, nil
	case "tencent":
		f, err := fakes.NewTencentSMSAt(addr, key, secret, sdkAppID)
		if err != nil {
			return nil, err
		}
		f.Blacklisted, f.Invalid, f.Throttled = map[string]bool{}, map[string]bool{}, map[string]bool{}
		for r, k := range fails {
			n := "+86" + nationalNumber(r)
			if strings.HasPrefix(r, "+") && !strings.HasPrefix(r, "+86") {
				n = r
			}
			map[string]map[string]bool{"blacklisted": f.Blacklisted, "invalid": f.Invalid, "throttled": f.Throttled}[k][n] = true
		}
		return &providerFake{url: f.URL(), close: f.Close, onCall: f.OnCall, faults: &f.Faults, ledger: &f.Ledger, summarize: tencentCallLine,
			config: fmt.Sprintf(`sms: {provider: tencent, secret_id: %s, secret_key: %s, sdk_app_id: "%s", sign_name: 华布, endpoint: "%s"}`, key, secret, sdkAppID, f.URL())}, nil
	case "jpush":
		f, err := fakes.NewJPushAt(addr, key, secret)
		if err != nil {
			return nil, err
		}
		f.Unbound = map[string]bool{}
		for r := range fails {
			f.Unbound[r] = true
		}
		return &providerFake{url: f.URL(), close: f.Close, onCall: f.OnCall, faults: &f.Faults, ledger: &f.Ledger, summarize: jpushCallLine,
			config: fmt.Sprintf(`push: {provider: jpush, app_key: %s, master_secret: %s, base_url: "%s"}`, key, secret, f.URL())}, nil
	case "webhook":
		f, err := fakes.NewWebhookAt(addr, secret)
		if err != nil {
			return nil, err
		}
		f.Refuse = map[string]int{}
		for r, k := range fails {
			f.Refuse[r], _ = strconv.Atoi(k)
		}
		return &providerFake{url: f.URL(), close: f.Close, onCall: f.OnCall, faults: &f.Faults, ledger: &f.Ledger, summarize: webhookCallLine,
			config: fmt.Sprintf(`webhook: {url: "%s/", secret: %s}`, f.URL(), secret)}, nil
	}
	return nil, fmt.Errorf("no fake %q", kind)
}

// nationalNumber drops a +86 / 0086 / 86 prefix from a mainland number.
func nationalNumber(s string) string {
	s = strings.NewReplacer(" ", "", "-", "").Replace(s)
	for _, p := range []string{"+86", "0086"} {
		if strings.HasPrefix(s, p) {
			return s[len(p):]
		}
	}
	if len(s) == 13 && strings.HasPrefix(s, "861") {
		return s[2:]
	}
	return s
}

// parseFails reads --fail: RECIPIENT[=KIND] entries separated by commas, or
// the name of a file with one RECIPIENT [KIND] (or RECIPIENT=KIND) a line.
func parseFails(spec, kind string) (map[string]string, error) {
	out := map[string]string{}
	if spec == "" {
		return out, nil
	}
	var entries []string
	if st, err := os.Stat(spec); err == nil && !st.IsDir() {
		f, err := os.Open(spec)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			line, _, _ := strings.Cut(sc.Text(), "#")
			if fs := strings.Fields(line); len(fs) > 0 {
				entries = append(entries, strings.Join(fs, "="))
			}
		}
		if err := sc.Err(); err != nil {
			return nil, err
		}
	} else {
		entries = splitList(spec)
	}
	allowed := failKinds[kind]
	for _, e := range entries {
		r, k, _ := strings.Cut(e, "=")
		r, k = strings.TrimSpace(r), strings.TrimSpace(k)
		if k == "" {
			k = allowed[0]
		}
		if k == "unsubscribed" && kind == "aliyun" {
			k = "refused"
		}
		ok := false
		for _, a := range allowed {
			ok = ok || a == k
		}
		if kind == "webhook" {
			n, err := strconv.Atoi(k)
			ok = err == nil && n >= 400 && n < 500
		}
		if r == "" || !ok {
			return nil, fmt.Errorf("--fail %q: give RECIPIENT[=KIND] with KIND one of %s", e, strings.Join(allowed, ", "))
		}
		out[r] = k
	}
	return out, nil
}

func describeFails(fails map[string]string) string {
	by := map[string][]string{}
	for r, k := range fails {
		by[k] = append(by[k], r)
	}
	var kinds []string
	for k := range by {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	var parts []string
	for _, k := range kinds {
		sort.Strings(by[k])
		parts = append(parts, k+" "+strings.Join(by[k], ","))
	}
	return strings.Join(parts, "; ")
}

// countList prints counts as "OK 5, isv.CUSTOMER_REFUSED 1", largest first.
func countList(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if m[keys[i]] != m[keys[j]] {
			return m[keys[i]] > m[keys[j]]
		}
		return keys[i] < keys[j]
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

// recipients prints a list of numbers or ids, at most three of them.
func recipients(list []string) string {
	if len(list) <= 3 {
		return strings.Join(list, ",")
	}
	return fmt.Sprintf("%s,… (%d)", strings.Join(list[:3], ","), len(list))
}

func noAnswer(call fakes.Call) (string, bool) {
	if call.Status == 0 {
		return fmt.Sprintf("no answer (held %s)", call.Elapsed.Round(time.Millisecond)), true
	}
	return "", false
}

func aliyunCallLine(call fakes.Call) (string, []string) {
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
		phones = splitList(get("PhoneNumbers"))
		if p := get("TemplateParam"); p != "" {
			params = " " + p
		}
	}
	head := fmt.Sprintf("aliyun %s %s %s%s →", action, get("TemplateCode"), recipients(phones), params)
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

func tencentCallLine(call fakes.Call) (string, []string) {
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
	head := fmt.Sprintf("tencent %s %s %s%s →", call.Header.Get("X-TC-Action"), req.TemplateId, recipients(req.PhoneNumberSet), params)
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
	line := fmt.Sprintf("%s %s", head, countList(counts))
	if len(failed) > 0 {
		line += " [" + strings.Join(failed, "; ") + "]"
	}
	return line, codes
}

func jpushCallLine(call fakes.Call) (string, []string) {
	if call.Method == "GET" {
		head := fmt.Sprintf("jpush GET %s?count=%s →", call.Path, strings.Join(call.Query["count"], ""))
		if s, ok := noAnswer(call); ok {
			return head + " " + s, nil
		}
		return fmt.Sprintf("%s %d", head, call.Status), nil
	}
	var req struct {
		Audience struct {
			Alias          []string `json:"alias"`
			RegistrationID []string `json:"registration_id"`
		} `json:"audience"`
		Notification struct {
			Alert string `json:"alert"`
		} `json:"notification"`
	}
	_ = json.Unmarshal(call.Body, &req)
	target := "alias " + recipients(req.Audience.Alias)
	if len(req.Audience.RegistrationID) > 0 {
		target = "registration_id " + recipients(req.Audience.RegistrationID)
	}
	alert := []rune(req.Notification.Alert)
	if len(alert) > 24 {
		alert = append(alert[:24], '…')
	}
	head := fmt.Sprintf("jpush %s %s %s %q →", call.Method, call.Path, target, string(alert))
	if s, ok := noAnswer(call); ok {
		return head + " " + s, []string{"no answer"}
	}
	var r struct {
		MsgID string `json:"msg_id"`
		Error *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	_ = json.Unmarshal(call.Response, &r)
	switch {
	case r.Error != nil:
		return fmt.Sprintf("%s %d error %d %s", head, call.Status, r.Error.Code, r.Error.Message), []string{strconv.Itoa(r.Error.Code)}
	case call.Status == 200:
		return fmt.Sprintf("%s 200 msg_id %s", head, r.MsgID), []string{"200"}
	}
	return fmt.Sprintf("%s %d %s", head, call.Status, strings.TrimSpace(string(call.Response))), []string{strconv.Itoa(call.Status)}
}

func webhookCallLine(call fakes.Call) (string, []string) {
	var ev struct {
		ID        string `json:"id"`
		CanvasID  string `json:"canvas_id"`
		StepID    string `json:"step_id"`
		Recipient struct {
			UserID string `json:"user_id"`
		} `json:"recipient"`
	}
	_ = json.Unmarshal(call.Body, &ev)
	head := fmt.Sprintf("webhook %s %s/%s user %s →", ev.ID, ev.CanvasID, ev.StepID, ev.Recipient.UserID)
	if s, ok := noAnswer(call); ok {
		return head + " " + s, []string{"no answer"}
	}
	msg := strings.TrimSpace(string(call.Response))
	return strings.TrimSpace(fmt.Sprintf("%s %d %s", head, call.Status, msg)), []string{strconv.Itoa(call.Status)}
}
