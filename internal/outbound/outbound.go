package outbound

import (
	"time"

	"github.com/huabu/huabu/internal/canvases"
)

// Recipient is who one delivery goes to.
type Recipient struct {
	UserID  string // the profile id (or staff userid for staff recipients)
	Address string // phone, email, WeCom userid, external userid, push alias ...
	Sender  string // the WeCom staff member who sends (wecom.customer), else ""
	// Attrs are the recipient's reserved profile attributes that channels may
	// read besides Address (AttrPhone, AttrPushRegistrationID, ...): a push
	// channel falls back from the alias to the registration id, a webhook
	// passes them on. Only non-empty values need be set.
	Attrs map[string]string
}

// Reserved profile attributes the engine copies into Recipient.Attrs.
const (
	AttrPhone               = "phone"
	AttrEmail               = "email"
	AttrPushAlias           = "push_alias"
	AttrPushRegistrationID  = "push_registration_id"
	AttrWeComExternalUserID = "wecom_external_userid"
	AttrWeComUserID         = "wecom_userid"
)

// ReservedAttrs lists the attributes above, in docs order.
var ReservedAttrs = []string{AttrPhone, AttrEmail, AttrPushAlias, AttrPushRegistrationID, AttrWeComExternalUserID, AttrWeComUserID}

// OutboxRecord is one message the outbox channel records.
type OutboxRecord struct {
	CanvasID, RunID, StepID string
	Channel                 string // the channel the message was meant for
	Recipient               Recipient
	Message                 canvases.Message
	At                      time.Time
}
