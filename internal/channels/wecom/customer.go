package wecom

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/silenceper/wechat/v2/work/externalcontact"

	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/channels"
)

func init() {
	channels.Register(channels.Spec{
		Name: "wecom.customer", Provider: "wecom",
		Doc: "WeCom enterprise mass-send (externalcontact/add_msg_template, chat_type single): one task per owner staff member (sender) " +
			"and content, up to 10000 customers each; the staff member confirms it in the WeCom client. fail_list customers fail as not_friend. " +
			"Sent means the task was created; its msgid is the ProviderRef for result polling.",
		MaxRecipients: 10000, MaxMixed: 100, Groupable: true, SameSender: true,
		Address: channels.AttrWeComExternalUserID, Config: wecomConfigFields,
	}, newWeComCustomer)
}

// wecomCustomer creates enterprise mass-send tasks for customers.
type wecomCustomer struct {
	spec     channels.Spec
	client   *wecomClient
	log      *slog.Logger
	contacts channels.ContactBook // may be nil: no screening, no welcome messages
	api      *API
	now      func() time.Time
}

func newWeComCustomer(cfg map[string]any, deps channels.Deps) (channels.Channel, error) {
	spec, _, _ := channels.Lookup("wecom.customer", "wecom")
	w, err := parseWeCom(spec, cfg, deps)
	if err != nil {
		return nil, err
	}
	return &wecomCustomer{spec: spec, client: newWeComClient(w, w.customerSecret, deps), log: deps.Logger,
		contacts: deps.Contacts, api: newAPI(w, deps), now: deps.Now}, nil
}

func (c *wecomCustomer) Spec() channels.Spec { return c.spec }

// msgTemplate is add_msg_template's body. The library's AddMsgTemplateRequest
// marshals every attachment kind (struct fields ignore omitempty) and an
// empty tag_filter into each request, so Huabu sends its own shape and only
// reuses the library's response and text types.
type msgTemplate struct {
	ChatType       string                   `json:"chat_type"`
	ExternalUserID []string                 `json:"external_userid,omitempty"`
	Sender         string                   `json:"sender,omitempty"`
	ChatIDList     []string                 `json:"chat_id_list,omitempty"`
	Text           *externalcontact.MsgText `json:"text,omitempty"`
	Attachments    []wecomAttachment        `json:"attachments,omitempty"`
}

type wecomAttachment struct {
	MsgType     string          `json:"msgtype"`
	Image       *attachImage    `json:"image,omitempty"`
	Link        *attachLink     `json:"link,omitempty"`
	MiniProgram *attachMiniProg `json:"miniprogram,omitempty"`
	Video       *attachMedia    `json:"video,omitempty"`
	File        *attachMedia    `json:"file,omitempty"`
}

type attachImage struct {
	MediaID string `json:"media_id,omitempty"`
	PicURL  string `json:"pic_url,omitempty"`
}

type attachLink struct {
	Title  string `json:"title"`
	PicURL string `json:"picurl,omitempty"`
	Desc   string `json:"desc,omitempty"`
	URL    string `json:"url"`
}

type attachMiniProg struct {
	Title      string `json:"title"`
	PicMediaID string `json:"pic_media_id"`
	AppID      string `json:"appid"`
	Page       string `json:"page"`
}

type attachMedia struct {
	MediaID string `json:"media_id"`
}

// wecomAttachments maps canvas attachments to WeCom's (at most 9).
func wecomAttachments(as []canvases.Attachment) ([]wecomAttachment, *channels.Error) {
	if len(as) > 9 {
		return nil, &channels.Error{Class: channels.Permanent, Reason: channels.ReasonInvalidContent, Message: fmt.Sprintf("%d attachments; WeCom takes at most 9", len(as))}
	}
	bad := func(i int, what string) *channels.Error {
		return &channels.Error{Class: channels.Permanent, Reason: channels.ReasonInvalidContent, Message: fmt.Sprintf("attachments[%d]: %s", i, what)}
	}
	out := make([]wecomAttachment, 0, len(as))
	for i, a := range as {
		w := wecomAttachment{MsgType: a.Type}
		switch a.Type {
		case "image":
			pic := a.URL
			if pic == "" {
				pic = a.Image
			}
			if a.MediaID == "" && pic == "" {
				return nil, bad(i, "an image needs media_id or url")
			}
			w.Image = &attachImage{MediaID: a.MediaID, PicURL: pic}
		case "link":
			if a.Title == "" || a.URL == "" {
				return nil, bad(i, "a link needs title and url")
			}
			w.Link = &attachLink{Title: a.Title, PicURL: a.Image, Desc: a.Description, URL: a.URL}
		case "miniprogram":
			if a.Title == "" || a.AppID == "" || a.Page == "" || a.MediaID == "" {
				return nil, bad(i, "a miniprogram needs title, appid, page and media_id (its cover)")
			}
			w.MiniProgram = &attachMiniProg{Title: a.Title, PicMediaID: a.MediaID, AppID: a.AppID, Page: a.Page}
		case "video", "file":
			if a.MediaID == "" {
				return nil, bad(i, "a "+a.Type+" needs media_id")
			}
			if a.Type == "video" {
				w.Video = &attachMedia{MediaID: a.MediaID}
			} else {
				w.File = &attachMedia{MediaID: a.MediaID}
			}
		default:
			return nil, bad(i, fmt.Sprintf("unknown type %q", a.Type))
		}
		out = append(out, w)
	}
	return out, nil
}

// templateContent fills text and attachments; WeCom needs one of them.
func templateContent(m *canvases.Message, t *msgTemplate) *channels.Error {
	if m == nil || (m.Text == "" && len(m.Attachments) == 0) {
		return &channels.Error{Class: channels.Permanent, Reason: channels.ReasonInvalidContent, Message: "a mass-send needs text or attachments"}
	}
	if m.Text != "" {
		t.Text = &externalcontact.MsgText{Content: m.Text}
	}
	as, e := wecomAttachments(m.Attachments)
	if e != nil {
		return e
	}
	t.Attachments = as
	return nil
}

func (c *wecomCustomer) Send(ctx context.Context, b channels.Batch) ([]channels.Outcome, error) {
	res := channels.NewResults(len(b.Deliveries))
	var todo []int
	for i, d := range b.Deliveries {
		switch {
		case d.Recipient.Address == "":
			res.Fail(i, &channels.Error{Class: channels.Permanent, Reason: channels.ReasonNoAddress, Message: "no wecom_external_userid"})
		case d.Recipient.Sender == "":
			res.Fail(i, &channels.Error{Class: channels.Permanent, Reason: channels.ReasonNoOwner, Message: "no owner staff member to send as"})
		default:
			todo = append(todo, i)
		}
	}
	todo = c.screen(ctx, b, todo, res)
	var calls [][]int
	for _, g := range channels.GroupByContent(channels.Pick(b.Deliveries, todo), true) {
		calls = append(calls, channels.Chunks(channels.Remap(todo, g), c.spec.MaxRecipients)...)
	}
	channels.Parallel(ctx, len(calls), 4, func(k int) { c.createTask(ctx, b, calls[k], res) })
	return res.Finish()
}

// createTask makes one mass-send task for one sender and content.
func (c *wecomCustomer) createTask(ctx context.Context, b channels.Batch, idxs []int, res *channels.Results) {
	first := b.Deliveries[idxs[0]]
	t := msgTemplate{ChatType: "single", Sender: first.Recipient.Sender}
	if e := templateContent(first.Message, &t); e != nil {
		for _, i := range idxs {
			res.CallFailed(i, e)
		}
		return
	}
	seen := map[string]bool{}
	for _, i := range idxs {
		if a := b.Deliveries[i].Recipient.Address; !seen[a] {
			seen[a] = true
			t.ExternalUserID = append(t.ExternalUserID, a)
		}
	}
	var resp externalcontact.AddMsgTemplateResponse
	if err := c.client.post(ctx, "/cgi-bin/externalcontact/add_msg_template", t, &resp); err != nil {
		e := err.(*channels.Error)
		if e.Reason == channels.ReasonInvalidUser && (e.Code == "40003" || e.Code == "60111") {
			// the sender is not a member: no customer of this task can be reached through them
			e = &channels.Error{Class: channels.Permanent, Reason: channels.ReasonInvalidUser, Code: e.Code, Message: "sender " + first.Recipient.Sender + ": " + e.Message}
		}
		c.log.Warn("wecom.customer: add_msg_template failed", "batch", b.Key, "sender", first.Recipient.Sender, "customers", len(t.ExternalUserID), "class", e.Class, "reason", e.Reason, "errcode", e.Code)
		for _, i := range idxs {
			res.CallFailed(i, e)
		}
		return
	}
	failed := map[string]bool{}
	for _, f := range resp.FailList {
		failed[f] = true
	}
	notFriend := &channels.Error{Class: channels.Permanent, Reason: channels.ReasonNotFriend, Message: "fail_list: not a contact of " + first.Recipient.Sender + " or an invalid external userid"}
	for _, i := range idxs {
		if failed[b.Deliveries[i].Recipient.Address] {
			res.Fail(i, notFriend)
		} else {
			res.Sent(i, resp.MsgID)
		}
	}
	if len(failed) > 0 {
		c.log.Info("wecom.customer: task created with unreachable customers", "batch", b.Key, "msgid", resp.MsgID, "sender", first.Recipient.Sender, "failed", len(failed), "sample", channels.Mask(strings.Join(resp.FailList[:1], "")))
	}
}
