package channels

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/outbound"
)

// Spec describes one provider implementation of a catalogue channel.
type Spec struct {
	Name     string // catalogue name: wecom.app, wecom.customer, sms, push, ...
	Provider string // wecom, aliyun, tencent, jpush, apns, smtp, webhook, outbox
	Doc      string
	// MaxRecipients is the most deliveries one Send may carry when they all
	// have the same rendered content (MessageKey) — and, with SameSender, the
	// same Sender.
	MaxRecipients int
	// MaxMixed is the most deliveries one Send may carry when their contents
	// differ (Aliyun SendBatchSms takes 100 personalised numbers where SendSms
	// takes 1000 identical ones). 0 means MaxRecipients.
	MaxMixed int
	// Groupable: identical content for many recipients is one provider call,
	// so the engine puts deliveries with the same rendered content together.
	Groupable bool
	// SameSender: every delivery of a batch must have the same Sender (WeCom
	// mass-send tasks belong to one staff member).
	SameSender bool
	// IdempotencyKey names the provider's own dedupe the channel uses
	// ("cid": JPush; "duplicate_check": WeCom's enable_duplicate_check), or
	// is empty. With one, Send records a key for each delivery before it
	// calls the provider (Batch.RecordKeys), and a call repeated with the
	// recorded keys (Delivery.Key) — after a timeout, after a crash, on
	// another worker — within KeyLife of recording cannot deliver twice: the
	// engine resends what was left undecided instead of reporting it
	// unknown. The registered spec has the default config's; an instance
	// whose config turns the dedupe off has none.
	IdempotencyKey string
	KeyLife        time.Duration
	// Address names the profile field (or staff field) a recipient is
	// reached at: phone, email, wecom_external_userid, wecom_userid, push_alias.
	Address string
	// Config lists the config fields under channels.<section>.
	Config []ConfigField
	// Default marks the provider a config section with several uses when
	// it names none (sms: aliyun, push: jpush).
	Default bool
	// TemplateCodeOnly: the provider sends only templates it approved
	// (Chinese SMS carriers), so a canvas step must give a template code.
	TemplateCodeOnly bool
}

// ConfigField is one setting of a provider in huabu.yaml.
type ConfigField struct {
	Name     string
	Doc      string
	Required bool
	Secret   bool // never logged
	Default  string
}

// Recipient, the reserved attributes and OutboxRecord are package
// outbound's, so the store can use them without importing the channels.
type (
	Recipient    = outbound.Recipient
	OutboxRecord = outbound.OutboxRecord
)

// Reserved profile attributes the engine copies into Recipient.Attrs.
const (
	AttrPhone               = outbound.AttrPhone
	AttrEmail               = outbound.AttrEmail
	AttrPushAlias           = outbound.AttrPushAlias
	AttrPushRegistrationID  = outbound.AttrPushRegistrationID
	AttrWeComExternalUserID = outbound.AttrWeComExternalUserID
	AttrWeComUserID         = outbound.AttrWeComUserID
)

// ReservedAttrs lists the attributes above, in docs order.
var ReservedAttrs = outbound.ReservedAttrs

// Delivery is one rendered message to one recipient.
type Delivery struct {
	Recipient Recipient
	Message   *canvases.Message // rendered: templates already applied
	// Key is the provider idempotency key an earlier attempt recorded for
	// this delivery (Spec.IdempotencyKey), or "". Deliveries sharing a key
	// were one provider call, and the channel repeats that call with it.
	Key string
}

// Batch is what one Send carries: deliveries that fit the channel's Spec.
type Batch struct {
	// Key identifies the batch across retries (run, step, page, group), for
	// providers with their own dedupe (WeCom enable_duplicate_check, JPush cid).
	Key      string
	CanvasID string
	RunID    string
	StepID   string
	// Visit counts the recipients' earlier visits to the step (a loop): a
	// message of a later visit is a new message, not a repeat.
	Visit      int
	Deliveries []Delivery
	// RecordKeys, when set, is called once by a channel with an
	// IdempotencyKey before it makes any provider call, with a key for each
	// delivery (the ones it already had included): the engine writes them
	// on the deliveries' ledger rows. If it fails, no call may be made.
	RecordKeys func(ctx context.Context, keys []string) error
}

// Status of one delivery after Send.
type Status string

const (
	Sent    Status = "sent"
	Failed  Status = "failed"
	Unknown Status = "unknown" // the provider may or may not have sent it
)

// Class says what the engine may do about a failure.
type Class string

const (
	RetryLater Class = "retry_later" // rate limited or over quota: try again after RetryAfter
	RetryNow   Class = "retry_now"   // transient (5xx, connection reset before sending)
	Permanent  Class = "permanent"   // final for this delivery, never retry; SuppressesAddress(reason) says whether to suppress the address
	Ambiguous  Class = "ambiguous"   // it may have been sent (timeout after the request left)
)

// Outcome is the result for one delivery.
//
//   - Sent: the provider accepted it (for wecom.customer/wecom.group: the
//     mass-send task was created; the staff member still has to confirm it).
//   - Failed with Class Permanent: final; the engine must not resend. Whether
//     the address is also suppressed is SuppressesAddress(Reason).
//   - Failed with Class RetryNow or RetryLater: the provider did not send it;
//     the engine may send it again (after RetryAfter for RetryLater).
//   - Unknown (Class Ambiguous): it may have been sent; record it as unknown.
type Outcome struct {
	Status      Status
	Class       Class  // for Failed and Unknown
	Reason      string // short, stable code for reports: invalid_user, not_friend, unsubscribed, rate_limited ...
	Detail      string // the provider's message, for logs
	Code        string // the provider's own error code (45009, isv.BUSINESS_LIMIT_CONTROL), for metrics
	ProviderRef string // the provider's message id, when it gives one
	// RetryAfter is the wait the provider asked for (Class RetryLater).
	RetryAfter time.Duration
}

// Stable Reason codes. Reports group failures by them; keep them stable.
const (
	ReasonRateLimited     = "rate_limited" // provider throttled: retry later
	ReasonOverQuota       = "over_quota"   // a daily/monthly or per-recipient quota is used up: retry later
	ReasonInsufficientBal = "insufficient_balance"
	ReasonServerError     = "server_error"     // provider 5xx or "system busy": retry now
	ReasonTransport       = "transport"        // connection failed before the request was sent: retry now
	ReasonTimeout         = "timeout"          // no answer after the request was sent: ambiguous
	ReasonConnectionLost  = "connection_lost"  // the connection broke after the request was sent: ambiguous
	ReasonTokenExpired    = "token_expired"    // access token still invalid after a refresh: retry now
	ReasonMisconfigured   = "misconfigured"    // bad credentials, secret, app id, IP whitelist, permissions
	ReasonInvalidUser     = "invalid_user"     // WeCom userid / external userid unknown or not visible to the app
	ReasonUnlicensed      = "unlicensed"       // WeCom member without an interface licence
	ReasonNotFriend       = "not_friend"       // customer is not (any more) a contact of the sender
	ReasonInvalidAddress  = "invalid_address"  // malformed phone number, email address or device token
	ReasonUnregistered    = "unregistered"     // push device token no longer valid (app uninstalled)
	ReasonNoAddress       = "no_address"       // the recipient has no address for this channel
	ReasonNoOwner         = "no_owner"         // wecom.customer: the customer has no owner staff member to send as
	ReasonNoDevice        = "no_device"        // no device is bound to the push alias / registration id
	ReasonUnsubscribed    = "unsubscribed"     // the person opted out (回T退订): never message again
	ReasonBlacklisted     = "blacklisted"      // provider or carrier blacklist
	ReasonInvalidTemplate = "invalid_template" // template code missing, unapproved or wrong type
	ReasonInvalidSign     = "invalid_sign"     // SMS sign name missing or unapproved
	ReasonInvalidParams   = "invalid_params"   // template parameters missing, too long or malformed
	ReasonInvalidContent  = "invalid_content"  // message empty, too long or of a type the provider rejects
	ReasonContentRejected = "content_rejected" // provider's content review: sensitive words, URLs in params
	ReasonQuietHours      = "quiet_hours"      // provider refuses marketing at this time of day: retry later
	ReasonRejected        = "rejected"         // the receiver refused it (webhook 4xx, SMTP 5xx)
	ReasonCanceled        = "canceled"
)

// SuppressesAddress reports whether a Permanent failure with this reason
// means the address itself must not be used on this channel again (the
// engine adds it to the suppression list). Other permanent reasons fail the
// delivery only: a wrong template must not silence the customer.
func SuppressesAddress(reason string) bool {
	switch reason {
	case ReasonUnsubscribed, ReasonBlacklisted, ReasonInvalidAddress, ReasonUnregistered:
		return true
	}
	return false
}

// Error is a failure of a whole Send, classified.
type Error struct {
	Class      Class
	Reason     string        // stable code, as in Outcome.Reason
	Code       string        // the provider's own code, e.g. 45009 or isv.BUSINESS_LIMIT_CONTROL
	Message    string        // the provider's message
	RetryAfter time.Duration // for RetryLater
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("%s (%s)", e.Reason, e.Class)
	if e.Code != "" {
		msg += " code " + e.Code
	}
	if e.Message != "" {
		msg += ": " + e.Message
	}
	return msg
}

// Classify returns the class of an error from Send: an *Error's own class,
// Ambiguous for context deadlines (the request may have left), RetryNow else.
func Classify(err error) *Error {
	var ce *Error
	if errors.As(err, &ce) {
		return ce
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return &Error{Class: Ambiguous, Reason: "timeout", Message: err.Error()}
	}
	if errors.Is(err, context.Canceled) {
		return &Error{Class: RetryNow, Reason: "canceled", Message: err.Error()}
	}
	return &Error{Class: RetryNow, Reason: "transport", Message: err.Error()}
}

// BatchLimit is the most deliveries one Send may carry: MaxRecipients when
// they all share one content (and, with SameSender, one Sender), MaxMixed
// otherwise.
func (s Spec) BatchLimit(uniform bool) int {
	if uniform || s.MaxMixed <= 0 {
		return s.MaxRecipients
	}
	return s.MaxMixed
}

// MessageKey identifies a rendered message's content: deliveries with equal
// keys can share one provider call on a Groupable channel. The engine groups
// by it; channels use it to split mixed batches.
func MessageKey(m *canvases.Message) string {
	if m == nil {
		return ""
	}
	b, _ := json.Marshal(m) // maps marshal with sorted keys, so the key is stable
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// Channel sends batches through one provider.
type Channel interface {
	Spec() Spec
	// Send delivers a batch and returns one Outcome per delivery, in order.
	// An error means nothing in the batch was decided: its class tells
	// whether the batch may be retried (RetryLater, RetryNow) or must be
	// recorded as unknown (Ambiguous) or failed (Permanent).
	Send(ctx context.Context, b Batch) ([]Outcome, error)
}

// OutboxWriter stores outbox records; the store implements it.
type OutboxWriter interface {
	WriteOutbox(ctx context.Context, records []OutboxRecord) error
}

// Deps are what channel factories may use.
type Deps struct {
	HTTP   *http.Client
	Logger *slog.Logger
	Outbox OutboxWriter
	Now    func() time.Time
	// Contacts, when set, lets wecom.customer skip customers who removed
	// their owner and send welcome messages with callback welcome codes.
	Contacts ContactBook
	// Observer, when set, sees every Send of the Set's channels (metrics).
	Observer SendObserver
	// Calls, when set, sees every WeCom API call (sends, staff tasks,
	// directory sync), one per request (metrics).
	Calls CallObserver
	// Slots, when set, books per-member send slots (wecom.app's pacing) in
	// the store every worker shares; nil paces within this process only.
	Slots SlotBook
}

// SlotBook books send slots per rate-limited recipient in a store shared by
// every worker (store.ReserveSlot), so a per-member limit holds however
// many workers send.
type SlotBook interface {
	ReserveSlot(ctx context.Context, key string, now time.Time, horizon time.Duration, perMinute, perHour int) (at time.Time, ok bool, err error)
	ReleaseSlot(ctx context.Context, key string, at time.Time) error
}

// CallObserver sees one provider API call: which, how long, and its error.
type CallObserver interface {
	ObserveCall(provider, api string, took time.Duration, err error)
}

// SendObserver sees each Send: how long the provider took, and what it
// answered (the outcomes, or the error that decided the whole batch).
type SendObserver interface {
	ObserveSend(channel, provider string, took time.Duration, outs []Outcome, err error)
}

// observed is a channel whose Sends are shown to an observer.
type observed struct {
	Channel
	name, provider string
	obs            SendObserver
}

func (o *observed) Send(ctx context.Context, b Batch) ([]Outcome, error) {
	start := time.Now()
	outs, err := o.Channel.Send(ctx, b)
	o.obs.ObserveSend(o.name, o.provider, time.Since(start), outs, err)
	return outs, err
}

// Factory builds a channel from its config section (after ${ENV} expansion).
type Factory func(cfg map[string]any, deps Deps) (Channel, error)

type registration struct {
	spec    Spec
	factory Factory
}

var (
	registryMu sync.RWMutex
	registry   = map[string]registration{} // "name/provider"
)

// Register adds a provider implementation; each provider file calls it from init.
func Register(spec Spec, f Factory) {
	registryMu.Lock()
	defer registryMu.Unlock()
	key := spec.Name + "/" + spec.Provider
	if _, dup := registry[key]; dup {
		panic("channels: " + key + " registered twice")
	}
	registry[key] = registration{spec: spec, factory: f}
}

// Specs lists every registered implementation, sorted by name and provider.
func Specs() []Spec {
	registryMu.RLock()
	defer registryMu.RUnlock()
	out := make([]Spec, 0, len(registry))
	for _, r := range registry {
		out = append(out, r.spec)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].Provider < out[j].Provider
	})
	return out
}

// Sections are the config keys under `channels:`, in catalogue order.
func Sections() []string {
	var out []string
	for _, cc := range canvases.Channels {
		if !slices.Contains(out, cc.ConfigSection) {
			out = append(out, cc.ConfigSection)
		}
	}
	return out
}

// Providers lists the providers a config section accepts, from the
// registered Specs of the channels it configures: the default first (the
// Spec marked Default, else the only one), the others by name, and
// "outbox", which routes the section to the outbox on purpose, last.
func Providers(section string) []string {
	var names []string
	def := ""
	for _, s := range Specs() {
		cc := canvases.Channel(s.Name)
		if cc == nil || cc.ConfigSection != section || s.Provider == "outbox" || slices.Contains(names, s.Provider) {
			continue
		}
		names = append(names, s.Provider)
		if s.Default {
			def = s.Provider
		}
	}
	if def != "" {
		i := slices.Index(names, def)
		names = append([]string{def}, slices.Delete(names, i, i+1)...)
	}
	return append(names, "outbox")
}

// Lookup returns the registration of a channel name and provider.
func Lookup(name, provider string) (Spec, Factory, bool) {
	registryMu.RLock()
	defer registryMu.RUnlock()
	r, ok := registry[name+"/"+provider]
	return r.spec, r.factory, ok
}

// Set is the channels of one deployment, by catalogue name.
type Set struct {
	byName map[string]Channel
}

// Get returns the channel for a catalogue name.
func (s *Set) Get(name string) (Channel, bool) {
	c, ok := s.byName[name]
	return c, ok
}

// NewSet builds a channel for every catalogue name: the configured provider,
// else the outbox. sections maps a config section (wecom, sms, ...) to its
// settings; providers maps channel names to provider names.
func NewSet(sections map[string]map[string]any, providers map[string]string, deps Deps) (*Set, error) {
	s := &Set{byName: map[string]Channel{}}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	if deps.HTTP == nil {
		deps.HTTP = &http.Client{Timeout: 30 * time.Second}
	}
	var errs []string
	for _, cc := range canvases.Channels {
		provider := providers[cc.Name]
		if provider == "" {
			provider = "outbox"
		}
		name := cc.Name
		section := sections[cc.ConfigSection]
		if provider == "outbox" {
			name, section = "outbox", nil
		}
		_, factory, ok := Lookup(name, provider)
		if !ok {
			errs = append(errs, fmt.Sprintf("channels.%s: provider %q is not available for %s", cc.ConfigSection, provider, cc.Name))
			continue
		}
		ch, err := factory(section, deps)
		if err != nil {
			errs = append(errs, fmt.Sprintf("channels.%s: %v", cc.ConfigSection, err))
			continue
		}
		if provider == "outbox" && cc.Name != "outbox" {
			ch = asOutboxFor(ch, cc.Name)
		}
		if deps.Observer != nil {
			ch = &observed{Channel: ch, name: cc.Name, provider: provider, obs: deps.Observer}
		}
		s.byName[cc.Name] = ch
	}
	if len(errs) > 0 {
		return nil, errors.New(strings.Join(errs, "; "))
	}
	return s, nil
}

// asOutboxFor makes the outbox record the channel a message was meant for.
func asOutboxFor(ch Channel, meantFor string) Channel {
	if o, ok := ch.(*outbox); ok {
		c := *o
		c.meantFor = meantFor
		return &c
	}
	return ch
}
