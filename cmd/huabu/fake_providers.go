package main

import (
	"bufio"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/huabu/huabu/internal/channels/fakes"
)

// `huabu fake aliyun|tencent|jpush|webhook` runs the SMS, push and webhook
// fakes of internal/channels/fakes standalone, so `huabu dev` can send through the
// real channel code to this machine (examples/huabu-fakes.yaml). Each call
// the fake answers is printed as one line; counts are printed on exit.

// providerFakeLong is the fake command's help, from the registered fakes
// (fakes.Standalones) after the WeCom fake, which has a command of its own.
func providerFakeLong() string {
	var b strings.Builder
	b.WriteString("Run a provider fake standalone, for trying Huabu's real channels on one machine.\n\n")
	b.WriteString("  huabu fake wecom     WeCom (see --confirm, --ack; listens on 127.0.0.1:9001)\n")
	for _, f := range fakes.Standalones() {
		fmt.Fprintf(&b, "  huabu fake %-9s %s (%s)\n", f.Name, f.Doc, f.Addr)
	}
	b.WriteString(`
The fakes check credentials and signatures like the providers: --key and --secret
must match the channel config (examples/huabu-fakes.yaml uses the defaults). Every
call is printed as one line; Ctrl-C prints the counts.

--fail RECIPIENT[=KIND],... (or a file with one RECIPIENT [KIND] a line) makes
those recipients fail for good, with the provider's real code:
`)
	for _, f := range fakes.Standalones() {
		fmt.Fprintf(&b, "  %-8s %s\n", f.Name, f.FailDoc)
	}
	b.WriteString("--fail-rate injects --faults into that share of calls (seeded by --seed).")
	return b.String()
}

func providerFakeNames() []string {
	names := []string{"wecom"}
	for _, f := range fakes.Standalones() {
		names = append(names, f.Name)
	}
	return names
}

// addProviderFakeFlags adds the flags of the SMS, push and webhook fakes to
// the fake command (--listen and --secret are shared with the WeCom fake).
func (c *cli) addProviderFakeFlags(cmd *cobra.Command) {
	cmd.Use = "fake " + strings.Join(providerFakeNames(), "|")
	cmd.Long = providerFakeLong()
	f := cmd.Flags()
	if l := f.Lookup("listen"); l != nil {
		var addrs []string
		for _, f := range fakes.Standalones() {
			addrs = append(addrs, f.Name+" "+f.Addr)
		}
		l.Usage = "address to listen on: wecom's default; " + strings.Join(addrs, ", ")
	}
	f.String("key", "demo-key", "aliyun, tencent, jpush: the key the fake accepts (AccessKey ID, SecretId, AppKey); the secret is --secret")
	f.String("sdk-app-id", "1400000001", "tencent: the SmsSdkAppId the fake accepts")
	f.String("fail", "", "recipients that always fail, as RECIPIENT[=KIND],... or a file (see above)")
	f.Float64("fail-rate", 0, "share of calls (0 to 1) answered with an injected fault from --faults")
	f.String("faults", "server_error,http_5xx", "faults --fail-rate injects: server_error, http_5xx, rate_limit, timeout, timeout_after_delivery")
	f.Int64("seed", 1, "seed of --fail-rate")
}

func (c *cli) runProviderFake(cmd *cobra.Command, kind string) error {
	fake, ok := fakes.StandaloneFake(kind)
	if !ok {
		names := providerFakeNames()
		return userErrorf("fake %q: use %s or %s", kind, strings.Join(names[:len(names)-1], ", "), names[len(names)-1])
	}
	fl := cmd.Flags()
	listen, _ := fl.GetString("listen")
	if !fl.Changed("listen") {
		listen = fake.Addr
	}
	secret, _ := fl.GetString("secret")
	key, _ := fl.GetString("key")
	sdkAppID, _ := fl.GetString("sdk-app-id")
	failSpec, _ := fl.GetString("fail")
	rate, _ := fl.GetFloat64("fail-rate")
	faultList, _ := fl.GetString("faults")
	seed, _ := fl.GetInt64("seed")

	fails, err := parseFails(failSpec, fake)
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

	p, err := fake.Start(fakes.StandaloneOptions{Addr: listen, Key: key, Secret: secret, SDKAppID: sdkAppID, Fails: fails})
	if err != nil {
		return userErrorf("--listen %s: %v", listen, err)
	}
	defer p.Close()
	if rate > 0 {
		p.Faults.Random(seed, rate, kinds...)
	}

	var mu sync.Mutex
	calls := 0
	answers := map[string]int{}
	p.OnCall(func(call fakes.Call) {
		line, codes := p.Summarize(call)
		mu.Lock()
		defer mu.Unlock()
		calls++
		for _, code := range codes {
			answers[code]++
		}
		fmt.Fprintf(c.stdout, "%s %s\n", time.Now().Format("15:04:05.000"), line)
	})

	fmt.Fprintf(c.stdout, "%s fake listening on %s\n", fake.Title, p.URL)
	if len(fails) > 0 {
		fmt.Fprintf(c.stdout, "  failing for good: %s\n", describeFails(fails))
	}
	if rate > 0 {
		fmt.Fprintf(c.stdout, "  injecting %s into %.0f%% of calls (seed %d)\n", faultList, rate*100, seed)
	}
	fmt.Fprintf(c.stdout, "  channels:\n    %s\n", p.Config)

	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()

	mu.Lock()
	defer mu.Unlock()
	delivered := p.Ledger.Delivered()
	unit := fake.Unit
	fmt.Fprintf(c.stdout, "%s fake: %d calls; delivered %d messages to %d %s", kind, calls, p.Ledger.Total(), len(delivered), unit)
	if dups := p.Ledger.Duplicates(); len(dups) > 0 {
		fmt.Fprintf(c.stdout, " (%d got more than one)", len(dups))
	}
	fmt.Fprintf(c.stdout, "\n  answers: %s\n", fakes.CountList(answers))
	injected := map[string]int{}
	for k, n := range p.Faults.Injected() {
		injected[k.String()] = n
	}
	if len(injected) > 0 {
		fmt.Fprintf(c.stdout, "  injected faults: %s\n", fakes.CountList(injected))
	}
	return nil
}

func faultByName(name string) (fakes.Fault, bool) {
	for f := fakes.RateLimit; f <= fakes.TimeoutAfterDelivery; f++ {
		if f.String() == name {
			return f, true
		}
	}
	return fakes.None, false
}

// parseFails reads --fail: RECIPIENT[=KIND] entries separated by commas, or
// the name of a file with one RECIPIENT [KIND] (or RECIPIENT=KIND) a line.
func parseFails(spec string, fake fakes.Standalone) (map[string]string, error) {
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
	for _, e := range entries {
		r, k, _ := strings.Cut(e, "=")
		r, k = strings.TrimSpace(r), strings.TrimSpace(k)
		k, ok := fake.Kind(k)
		if r == "" || !ok {
			return nil, fmt.Errorf("--fail %q: give RECIPIENT[=KIND] with KIND one of %s", e, strings.Join(fake.FailKinds, ", "))
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
