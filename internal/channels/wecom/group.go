package wecom

import (
	"context"
	"log/slog"

	"github.com/silenceper/wechat/v2/work/appchat"
	"github.com/silenceper/wechat/v2/work/externalcontact"

	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/channels"
)

func init() {
	channels.Register(channels.Spec{
		Name: "wecom.group", Provider: "wecom",
		Doc: "WeCom customer groups: a group mass-send task (add_msg_template, chat_type group) for each staff member's customer groups, " +
			"or, when the message has chat_id, one appchat/send to that app chat per distinct content in a batch.",
		MaxRecipients: 100, Groupable: false,
		Address: channels.AttrWeComUserID, Config: wecomConfigFields,
	}, newWeComGroup)
}

// wecomGroup reaches customer groups through their owners, or app chats.
type wecomGroup struct {
	spec     channels.Spec
	customer *wecomClient // add_msg_template needs customer-contact permission
	app      *wecomClient // appchat/send is an app API
	log      *slog.Logger
}

func newWeComGroup(cfg map[string]any, deps channels.Deps) (channels.Channel, error) {
	spec, _, _ := channels.Lookup("wecom.group", "wecom")
	w, err := parseWeCom(spec, cfg, deps)
	if err != nil {
		return nil, err
	}
	return &wecomGroup{spec: spec, customer: newWeComClient(w, w.customerSecret, deps), app: newWeComClient(w, w.secret, deps), log: deps.Logger}, nil
}

func (c *wecomGroup) Spec() channels.Spec { return c.spec }

func (c *wecomGroup) Send(ctx context.Context, b channels.Batch) ([]channels.Outcome, error) {
	res := channels.NewResults(len(b.Deliveries))
	// Deliveries that would make the same provider call share it: the same
	// chat and content, or the same staff member and content.
	type call struct {
		chat bool
		idxs []int
	}
	byKey := map[string]int{}
	var calls []call
	for i, d := range b.Deliveries {
		m := d.Message
		var key string
		chat := m != nil && m.ChatID != ""
		switch {
		case m == nil:
			res.Fail(i, &channels.Error{Class: channels.Permanent, Reason: channels.ReasonInvalidContent, Message: "no message"})
			continue
		case chat:
			key = "chat\x00" + m.ChatID + "\x00" + channels.MessageKey(m)
		case d.Recipient.Address == "":
			res.Fail(i, &channels.Error{Class: channels.Permanent, Reason: channels.ReasonNoAddress, Message: "no wecom_userid of the staff member whose groups get the message"})
			continue
		default:
			key = "owner\x00" + d.Recipient.Address + "\x00" + channels.MessageKey(m)
		}
		k, ok := byKey[key]
		if !ok {
			k = len(calls)
			byKey[key] = k
			calls = append(calls, call{chat: chat})
		}
		calls[k].idxs = append(calls[k].idxs, i)
	}
	channels.Parallel(ctx, len(calls), 4, func(k int) {
		cl := calls[k]
		var ref string
		var err error
		if cl.chat {
			err = c.appChat(ctx, b.Deliveries[cl.idxs[0]].Message)
		} else {
			ref, err = c.groupTask(ctx, b.Deliveries[cl.idxs[0]])
		}
		for _, i := range cl.idxs {
			if err != nil {
				res.CallFailed(i, err.(*channels.Error))
			} else {
				res.Sent(i, ref)
			}
		}
		if err != nil {
			e := err.(*channels.Error)
			c.log.Warn("wecom.group send failed", "batch", b.Key, "appchat", cl.chat, "class", e.Class, "reason", e.Reason, "errcode", e.Code)
		}
	})
	return res.Finish()
}

// groupTask creates a group mass-send for one staff member's customer groups.
func (c *wecomGroup) groupTask(ctx context.Context, d channels.Delivery) (string, error) {
	t := msgTemplate{ChatType: "group", Sender: d.Recipient.Address}
	if e := templateContent(d.Message, &t); e != nil {
		return "", e
	}
	var resp externalcontact.AddMsgTemplateResponse
	if err := c.customer.post(ctx, "/cgi-bin/externalcontact/add_msg_template", t, &resp); err != nil {
		return "", err
	}
	return resp.MsgID, nil
}

// appChat sends to an app chat (群聊会话) one message: the text, or, without
// text, the single attachment. One call per delivery keeps "sent" exact; an
// app chat cannot take text and attachments in one message.
func (c *wecomGroup) appChat(ctx context.Context, m *canvases.Message) error {
	common := &appchat.SendRequestCommon{ChatID: m.ChatID}
	var body any
	switch {
	case m.Text != "" && len(m.Attachments) == 0:
		common.MsgType = "text"
		body = appchat.SendTextRequest{SendRequestCommon: common, Text: appchat.TextField{Content: m.Text}}
	case m.Text == "" && len(m.Attachments) == 1:
		a := m.Attachments[0]
		switch {
		case a.Type == "image" && a.MediaID != "":
			common.MsgType = "image"
			body = appchat.SendImageRequest{SendRequestCommon: common, Image: appchat.ImageField{MediaID: a.MediaID}}
		case a.Type == "link" && a.Title != "" && a.URL != "":
			common.MsgType = "news"
			body = struct {
				*appchat.SendRequestCommon
				News appNews `json:"news"`
			}{common, appNews{Articles: []appArticle{{Title: a.Title, Description: a.Description, URL: a.URL, PicURL: a.Image}}}}
		case (a.Type == "file" || a.Type == "video") && a.MediaID != "":
			common.MsgType = a.Type
			media := map[string]any{"chatid": m.ChatID, "msgtype": a.Type, "safe": 0, a.Type: attachMedia{MediaID: a.MediaID}}
			body = media
		default:
			return &channels.Error{Class: channels.Permanent, Reason: channels.ReasonInvalidContent, Message: "an app chat takes an image or file/video with media_id, or a link with title and url"}
		}
	default:
		return &channels.Error{Class: channels.Permanent, Reason: channels.ReasonInvalidContent, Message: "an app chat message is text or exactly one attachment"}
	}
	var resp appchat.SendResponse
	return c.app.post(ctx, "/cgi-bin/appchat/send", body, &resp)
}
