package wecom

import (
	"context"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/silenceper/wechat/v2/work/message"

	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/channels"
)

func init() {
	channels.Register(channels.Spec{
		Name: "wecom.app", Provider: "wecom",
		Doc: "WeCom app messages (message/send) to staff members: text, markdown or a news card. " +
			"Identical content goes to up to 1000 members per call; WeCom's duplicate check drops repeats within duplicate_check_interval, " +
			"so a message repeated after a timeout or a crash, by any worker within nine tenths of the interval (the ledger keeps when it was first sent), is not delivered twice; " +
			"each member is paced to member_per_minute / member_per_hour in this process. " +
			"WeCom's per-minute API limit (45009) holds further calls until the next minute, its concurrency limit (45033) for 2 s; the held deliveries are retried then.",
		MaxRecipients: 1000, MaxMixed: 100, Groupable: true,
		IdempotencyKey: "duplicate_check", KeyLife: dupKeyLife(1800),
		Address: channels.AttrWeComUserID, Config: wecomConfigFields,
	}, newWeComApp)
}

// wecomApp sends app messages (应用消息) to internal members.
type wecomApp struct {
	spec    channels.Spec
	client  *wecomClient
	agentID string
	dup     int
	pacer   *memberPacer
	gate    channels.Gate // WeCom's per-minute API limit (45009) or concurrency limit (45033), when hit
	maxWait time.Duration
	log     *slog.Logger
	now     func() time.Time
	sleep   func(ctx context.Context, d time.Duration) error
}

func newWeComApp(cfg map[string]any, deps channels.Deps) (channels.Channel, error) {
	spec, _, _ := channels.Lookup("wecom.app", "wecom")
	w, err := parseWeCom(spec, cfg, deps)
	if err != nil {
		return nil, err
	}
	spec.KeyLife = dupKeyLife(w.dupInterval)
	if w.dupInterval == 0 { // enable_duplicate_check is off
		spec.IdempotencyKey = ""
	}
	return &wecomApp{
		spec: spec, client: newWeComClient(w, w.secret, deps), agentID: w.agentID, dup: w.dupInterval,
		pacer: newMemberPacer(w.perMinute, w.perHour, deps.Slots, "wecom.app/"+w.corpID+"/"+w.agentID+"/"), maxWait: w.maxWait,
		log: deps.Logger, now: deps.Now, sleep: channels.SleepCtx,
	}, nil
}

func (c *wecomApp) Spec() channels.Spec { return c.spec }

// dupKeyLife is how long after a message was first sent a resend is still
// inside WeCom's duplicate check (seconds): well inside it.
func dupKeyLife(seconds int) time.Duration {
	interval := time.Duration(seconds) * time.Second
	return interval - min(interval/10, 5*time.Minute)
}

// appMessage is message/send's body: the library's common fields plus the
// content kinds Huabu sends (the library only has text, image and voice).
type appMessage struct {
	*message.SendRequestCommon
	Text     *message.TextField `json:"text,omitempty"`
	Markdown *message.TextField `json:"markdown,omitempty"`
	News     *appNews           `json:"news,omitempty"`
}

type appNews struct {
	Articles []appArticle `json:"articles"`
}

type appArticle struct {
	Title       string `json:"title"`
	Description string `json:"description,omitempty"`
	URL         string `json:"url,omitempty"`
	PicURL      string `json:"picurl,omitempty"`
}

// content picks the message type: markdown, else a news card when there is a
// title, else text.
func appContent(m *canvases.Message, body *appMessage) *channels.Error {
	switch {
	case m.Markdown != "":
		body.MsgType, body.Markdown = "markdown", &message.TextField{Content: m.Markdown}
	case m.Title != "":
		desc := m.Description
		if desc == "" {
			desc = m.Text
		}
		body.MsgType = "news"
		body.News = &appNews{Articles: []appArticle{{Title: m.Title, Description: desc, URL: m.URL, PicURL: m.Image}}}
	case m.Text != "":
		body.MsgType, body.Text = "text", &message.TextField{Content: m.Text}
	default:
		return &channels.Error{Class: channels.Permanent, Reason: channels.ReasonInvalidContent, Message: "wecom.app needs text, markdown or title"}
	}
	return nil
}

func (c *wecomApp) Send(ctx context.Context, b channels.Batch) ([]channels.Outcome, error) {
	res := channels.NewResults(len(b.Deliveries))
	var todo []int
	for i, d := range b.Deliveries {
		switch {
		case d.Recipient.Address == "":
			res.Fail(i, &channels.Error{Class: channels.Permanent, Reason: channels.ReasonNoAddress, Message: "no wecom_userid"})
		case d.Message == nil:
			res.Fail(i, &channels.Error{Class: channels.Permanent, Reason: channels.ReasonInvalidContent, Message: "no message"})
		default:
			todo = append(todo, i)
		}
	}
	var calls [][]int
	for _, g := range channels.GroupByContent(channels.Pick(b.Deliveries, todo), false) {
		calls = append(calls, channels.Chunks(channels.Remap(todo, g), c.spec.MaxRecipients)...)
	}
	if c.spec.IdempotencyKey != "" && b.RecordKeys != nil && len(todo) > 0 {
		// WeCom's duplicate check works on content and member, not on a
		// token: the key names the content, and the ledger keeps when it
		// was first sent (the check lasts duplicate_check_interval).
		keys := make([]string, len(b.Deliveries))
		for _, i := range todo {
			keys[i] = "dup-" + channels.MessageKey(b.Deliveries[i].Message)[:16]
		}
		if err := b.RecordKeys(ctx, keys); err != nil {
			e := &channels.Error{Class: channels.RetryNow, Reason: channels.ReasonServerError, Message: "the sends could not be recorded, so nothing was sent: " + err.Error()}
			for _, i := range todo {
				res.CallFailed(i, e)
			}
			return res.Finish()
		}
	}
	channels.Parallel(ctx, len(calls), 4, func(k int) { c.sendGroup(ctx, b, calls[k], res) })
	return res.Finish()
}

// sendGroup sends one content to up to 1000 deliveries, in waves that wait
// for each member's rate window.
func (c *wecomApp) sendGroup(ctx context.Context, b channels.Batch, idxs []int, res *channels.Results) {
	m := b.Deliveries[idxs[0]].Message
	body := appMessage{SendRequestCommon: &message.SendRequestCommon{AgentID: c.agentID}}
	if e := appContent(m, &body); e != nil {
		for _, i := range idxs {
			res.CallFailed(i, e)
		}
		return
	}
	if c.dup > 0 {
		body.EnableDuplicateCheck, body.DuplicateCheckInterval = 1, c.dup
	}
	// One slot per distinct member: two deliveries to the same member with
	// the same content are one message (and WeCom would merge them anyway).
	byMember := map[string][]int{}
	var members []string
	for _, i := range idxs {
		key := strings.ToLower(b.Deliveries[i].Recipient.Address)
		if _, ok := byMember[key]; !ok {
			members = append(members, key)
		}
		byMember[key] = append(byMember[key], i)
	}
	now := c.now()
	slots := map[time.Time][]string{}
	for _, mem := range members {
		at, ok := c.pacer.reserve(mem, now, c.maxWait)
		if !ok {
			e := &channels.Error{Class: channels.RetryLater, Reason: channels.ReasonRateLimited, RetryAfter: at.Sub(now),
				Message: "member's WeCom app-message window is full (WeCom would drop the message)"}
			for _, i := range byMember[mem] {
				res.Fail(i, e)
			}
			continue
		}
		slots[at] = append(slots[at], mem)
	}
	times := make([]time.Time, 0, len(slots))
	for t := range slots {
		times = append(times, t)
	}
	sort.Slice(times, func(i, j int) bool { return times[i].Before(times[j]) })
	for w := 0; w < len(times); {
		if d := times[w].Sub(c.now()); d > 0 {
			if err := c.sleep(ctx, d); err != nil {
				for _, t := range times[w:] {
					for _, mem := range slots[t] {
						c.pacer.release(mem, t)
						for _, i := range byMember[mem] {
							res.CallFailed(i, &channels.Error{Class: channels.RetryLater, Reason: channels.ReasonRateLimited, RetryAfter: t.Sub(c.now()), Message: "stopped waiting for the member's rate window: " + err.Error()})
						}
					}
				}
				return
			}
		}
		// Everything whose slot has come goes in one call.
		var wave []string
		var waveTimes []time.Time
		now := c.now()
		for w < len(times) && !times[w].After(now) {
			wave = append(wave, slots[times[w]]...)
			for range slots[times[w]] {
				waveTimes = append(waveTimes, times[w])
			}
			w++
		}
		c.call(ctx, body, wave, waveTimes, byMember, res, b)
	}
}

func (c *wecomApp) call(ctx context.Context, body appMessage, members []string, at []time.Time, byMember map[string][]int, res *channels.Results, b channels.Batch) {
	common := *body.SendRequestCommon
	common.ToUser = strings.Join(addresses(b, members, byMember), "|")
	body.SendRequestCommon = &common
	releaseAll := func() {
		for k, mem := range members {
			c.pacer.release(mem, at[k])
		}
	}
	var resp message.SendResponse
	err := error(nil)
	if left, gerr := c.gate.Pass(ctx, c.now, c.sleep); gerr != nil {
		err = &channels.Error{Class: channels.RetryNow, Reason: channels.ReasonCanceled, Message: gerr.Error()}
	} else if left > 0 {
		err = &channels.Error{Class: channels.RetryLater, Reason: channels.ReasonRateLimited, RetryAfter: left, Message: "waiting for WeCom's API limit to reset"}
	} else {
		err = c.client.post(ctx, "/cgi-bin/message/send", body, &resp)
	}
	if err != nil {
		e := err.(*channels.Error)
		switch e.Code {
		case "45009": // per-minute API limit: the next minute
			e.RetryAfter = channels.UntilNextMinute(c.now())
			c.gate.Hold(c.now().Add(e.RetryAfter))
		case "45033": // too many concurrent calls: a moment
			c.gate.Hold(c.now().Add(e.RetryAfter))
		}
		if e.Code == "81013" { // every recipient invalid: a verdict per recipient
			releaseAll()
			for _, mem := range members {
				for _, i := range byMember[mem] {
					res.Fail(i, e)
				}
			}
			return
		}
		if e.Class != channels.Ambiguous {
			releaseAll()
		}
		c.log.Warn("wecom.app send failed", "batch", b.Key, "recipients", len(members), "class", e.Class, "reason", e.Reason, "errcode", e.Code)
		for _, mem := range members {
			for _, i := range byMember[mem] {
				res.CallFailed(i, e)
			}
		}
		return
	}
	invalid := splitLower(resp.InvalidUser)
	unlicensed := splitLower(resp.UnlicensedUser)
	for k, mem := range members {
		var e *channels.Error
		switch {
		case invalid[mem]:
			e = &channels.Error{Class: channels.Permanent, Reason: channels.ReasonInvalidUser, Message: "invaliduser: not a member or not visible to the app"}
		case unlicensed[mem]:
			e = &channels.Error{Class: channels.Permanent, Reason: channels.ReasonUnlicensed, Message: "unlicenseduser: the member has no interface licence"}
		}
		if e != nil {
			c.pacer.release(mem, at[k])
		}
		for _, i := range byMember[mem] {
			if e != nil {
				res.Fail(i, e)
			} else {
				res.Sent(i, resp.MsgID)
			}
		}
	}
	if len(invalid)+len(unlicensed) > 0 {
		c.log.Info("wecom.app: some members were not reached", "batch", b.Key, "invalid", len(invalid), "unlicensed", len(unlicensed))
	}
}

// addresses returns the members' userids as the deliveries spelled them.
func addresses(b channels.Batch, members []string, byMember map[string][]int) []string {
	out := make([]string, len(members))
	for k, mem := range members {
		out[k] = b.Deliveries[byMember[mem][0]].Recipient.Address
	}
	return out
}

func splitLower(list string) map[string]bool {
	if list == "" {
		return nil
	}
	out := map[string]bool{}
	for _, s := range strings.Split(list, "|") {
		if s = strings.TrimSpace(s); s != "" {
			out[strings.ToLower(s)] = true
		}
	}
	return out
}
