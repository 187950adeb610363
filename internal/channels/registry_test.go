package channels_test

import (
	"context"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/channels"
)

// The language's catalogue (canvases.Channels) and the registered providers
// must stay in step: every channel a canvas may name can be configured, and
// nothing is registered that a canvas cannot name.
func TestCatalogueAndSpecsInStep(t *testing.T) {
	registered := map[string][]string{}
	for _, s := range channels.Specs() {
		registered[s.Name] = append(registered[s.Name], s.Provider)
		require.Contains(t, canvases.ChannelNames(), s.Name, "%s/%s is registered but not in canvases.Channels", s.Name, s.Provider)
	}
	for _, cc := range canvases.Channels {
		if cc.Name == "outbox" {
			continue
		}
		require.NotEmpty(t, registered[cc.Name], "catalogue channel %s has no provider", cc.Name)
	}
}

func TestSpecsAreComplete(t *testing.T) {
	for _, s := range channels.Specs() {
		require.NotEmpty(t, s.Doc, s.Name+"/"+s.Provider)
		require.Positive(t, s.MaxRecipients, s.Name+"/"+s.Provider)
		require.GreaterOrEqual(t, s.MaxRecipients, s.BatchLimit(false), s.Name+"/"+s.Provider)
		if s.SameSender {
			require.True(t, s.Groupable)
		}
		cc := canvases.Channel(s.Name)
		if slices.Contains(cc.Recipients, "user") || s.Name == "wecom.app" || s.Name == "wecom.group" {
			// a channel reaching profiles names the profile field it reads
			if s.Name != "webhook" && s.Name != "outbox" {
				require.Contains(t, channels.ReservedAttrs, s.Address, s.Name+"/"+s.Provider)
			}
		}
		for _, f := range s.Config {
			require.NotEmpty(t, f.Doc, "%s/%s config %s", s.Name, s.Provider, f.Name)
		}
	}
}

func TestMessageKey(t *testing.T) {
	a := &canvases.Message{Template: "SMS_1", Params: map[string]string{"a": "1", "b": "2"}}
	b := &canvases.Message{Params: map[string]string{"b": "2", "a": "1"}, Template: "SMS_1"}
	c := &canvases.Message{Template: "SMS_1", Params: map[string]string{"a": "1", "b": "3"}}
	require.Equal(t, channels.MessageKey(a), channels.MessageKey(b))
	require.NotEqual(t, channels.MessageKey(a), channels.MessageKey(c))
	require.Len(t, channels.MessageKey(a), 32)
}

func TestNewSetWithFakes(t *testing.T) {
	w := newWeComFake(t)
	a := newAliyunFake(t)
	sections := map[string]map[string]any{"wecom": wecomCfg(w), "sms": aliyunCfg(a)}
	providers := map[string]string{"wecom.app": "wecom", "wecom.customer": "wecom", "wecom.group": "wecom", "sms": "aliyun"}
	set, err := channels.NewSet(sections, providers, channels.Deps{Outbox: nopOutbox{}})
	require.NoError(t, err)
	for _, name := range canvases.ChannelNames() {
		ch, ok := set.Get(name)
		require.True(t, ok, name)
		require.NotNil(t, ch.Spec())
	}
	sms, _ := set.Get("sms")
	require.Equal(t, "aliyun", sms.Spec().Provider)
	outs, err := sms.Send(context.Background(), batch(smsDeliveries(same(&canvases.Message{Template: "SMS_1"}), "13800000001")))
	require.NoError(t, err)
	require.Equal(t, channels.Sent, outs[0].Status)

	_, err = channels.NewSet(map[string]map[string]any{"sms": {"provider": "aliyun"}}, map[string]string{"sms": "aliyun", "push": "fcm"}, channels.Deps{Outbox: nopOutbox{}})
	require.Error(t, err)
	require.Contains(t, err.Error(), "channels.sms: access_key_id is required")
	require.Contains(t, err.Error(), `channels.push: provider "fcm" is not available for push`)
}

type nopOutbox struct{}

func (nopOutbox) WriteOutbox(context.Context, []channels.OutboxRecord) error { return nil }

// Config sections and their providers come from the registered specs, so
// config accepts exactly the providers this build has (no `push: fcm`).
func TestProvidersFromSpecs(t *testing.T) {
	require.Equal(t, []string{"wecom", "sms", "push", "email", "webhook", "outbox"}, channels.Sections())
	for section, want := range map[string][]string{
		"wecom":   {"wecom", "outbox"},
		"sms":     {"aliyun", "tencent", "outbox"},
		"push":    {"jpush", "apns", "outbox"},
		"email":   {"smtp", "outbox"},
		"webhook": {"webhook", "outbox"},
		"outbox":  {"outbox"},
	} {
		require.Equal(t, want, channels.Providers(section), section)
	}
}
