package canvases

import "slices"

// ChannelContent is what a push step may say on one channel: the message
// fields the channel reads and who it can reach. It is the language side of a
// channel; the provider side (SDK, limits, error codes) lives in package
// channels, and a test there keeps the two catalogues in step.
type ChannelContent struct {
	Name string
	Doc  string
	// Fields are the push fields this channel reads.
	Fields []string
	// AnyOf lists alternatives of which at least one must be given.
	AnyOf []string
	// Recipients are the allowed values of push.to; the first is the default.
	Recipients []string
	// ConfigSection is the config key under `channels:` that configures it.
	ConfigSection string
	// OneTextPerSender: the provider sends one text to all of a staff
	// member's recipients (WeCom mass-send), so per-customer fields multiply
	// the tasks staff have to confirm.
	OneTextPerSender bool
}

var allRecipients = []string{"user", "owner", "owner.leader"}

// contentFields is every message field a push step knows, in docs order.
var contentFields = []string{"text", "title", "markdown", "description", "url", "image", "template", "params", "sign_name", "subject", "html", "data", "attachments", "chat_id"}

// Channels is the catalogue of channel names a canvas may use.
var Channels = []*ChannelContent{
	{
		Name: "wecom.app", ConfigSection: "wecom",
		Doc:        "WeCom app message (应用消息) to staff members: text, markdown, or a news card with title, description, url and image.",
		Fields:     []string{"text", "markdown", "title", "description", "url", "image"},
		AnyOf:      []string{"text", "markdown", "title"},
		Recipients: []string{"owner", "owner.leader", "user"},
	},
	{
		Name: "wecom.customer", ConfigSection: "wecom",
		Doc:              "WeCom enterprise mass-send (企业群发) to customers, created as a task for the owner staff member who confirms it.",
		Fields:           []string{"text", "attachments"},
		AnyOf:            []string{"text", "attachments"},
		Recipients:       []string{"user"},
		OneTextPerSender: true,
	},
	{
		Name: "wecom.group", ConfigSection: "wecom",
		Doc:        "WeCom customer groups (客户群): a group mass-send task for each owner's groups, or a fixed app chat with chat_id.",
		Fields:     []string{"text", "attachments", "chat_id"},
		AnyOf:      []string{"text", "attachments"},
		Recipients: []string{"owner", "owner.leader"},
	},
	{
		Name: "sms", ConfigSection: "sms",
		Doc:        "SMS through Aliyun or Tencent Cloud: an approved template code with parameters.",
		Fields:     []string{"template", "params", "sign_name", "text"},
		AnyOf:      []string{"template"},
		Recipients: allRecipients,
	},
	{
		Name: "push", ConfigSection: "push",
		Doc:        "App push through JPush or APNs: title, text, a url to open and extra data.",
		Fields:     []string{"title", "text", "url", "data"},
		AnyOf:      []string{"text"},
		Recipients: allRecipients,
	},
	{
		Name: "email", ConfigSection: "email",
		Doc:        "Email over SMTP: subject with an HTML and/or plain-text body.",
		Fields:     []string{"subject", "html", "text"},
		AnyOf:      []string{"html", "text"},
		Recipients: allRecipients,
	},
	{
		Name: "webhook", ConfigSection: "webhook",
		Doc:        "A signed JSON POST to the configured URL, with the recipient and any data fields.",
		Fields:     []string{"data", "text"},
		Recipients: allRecipients,
	},
	{
		Name: "outbox", ConfigSection: "outbox",
		Doc:        "Records the rendered message in the store instead of sending it (`huabu outbox`); what every unconfigured channel uses.",
		Fields:     contentFields,
		Recipients: allRecipients,
	},
}

// Channel returns the catalogue entry for name, or nil.
func Channel(name string) *ChannelContent {
	for _, c := range Channels {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// ChannelNames lists the catalogue's channel names.
func ChannelNames() []string {
	names := make([]string, len(Channels))
	for i, c := range Channels {
		names[i] = c.Name
	}
	return names
}

func (c *ChannelContent) reads(field string) bool { return slices.Contains(c.Fields, field) }
