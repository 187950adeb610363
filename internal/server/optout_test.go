package server_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huabu/huabu/internal/channels/fakes"
	"github.com/huabu/huabu/internal/server"
	"github.com/huabu/huabu/internal/store"
)

func TestIsUnsubscribeReply(t *testing.T) {
	for text, want := range map[string]bool{
		"T": true, "t": true, "TD": true, "td": true, " Td ": true, "ＴＤ": true, "ｔｄ": true, "TD。": true, "【TD】": true,
		"退订": true, "我要退订": true, "退订！": true, "拒收": true, "拒收此类短信": true, "STOP": true, "unsubscribe": true,
		"好的": false, "TDD": false, "谢谢": false, "": false, "TEST": false, "1": false,
	} {
		require.Equal(t, want, server.IsUnsubscribeReply(text), "%q", text)
	}
}

// TestSMSRepliesFromEachProvider: the providers' fakes push replies in
// their real formats; unsubscribe replies suppress the number on SMS.
func TestSMSRepliesFromEachProvider(t *testing.T) {
	ctx := context.Background()
	for _, provider := range []string{"aliyun", "tencent"} {
		t.Run(provider, func(t *testing.T) {
			st, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "huabu.db"))
			require.NoError(t, err)
			defer st.Close()
			h := server.New(nil, slog.New(slog.DiscardHandler), nil)
			h.Handle("POST /sms/replies", &server.SMSReplies{Provider: provider, Token: "tok-0123456789abcdef", Store: st, Log: slog.New(slog.DiscardHandler)})
			srv := httptest.NewServer(h.Public())
			defer srv.Close()
			url := srv.URL + "/sms/replies?token=tok-0123456789abcdef"
			aliyun, tencent := fakes.NewAliyunSMS("k", "s"), fakes.NewTencentSMS("id", "key", "app")
			defer aliyun.Close()
			defer tencent.Close()
			reply := func(phone, text string) error {
				if provider == "aliyun" {
					return aliyun.Reply(ctx, url, phone, text)
				}
				return tencent.Reply(ctx, url, phone, text)
			}
			require.NoError(t, reply("13900000001", "退订"))
			require.NoError(t, reply("13900000002", "收到"))
			got, err := st.SuppressedAmong(ctx, "sms", []string{store.AddressSubject("13900000001"), store.AddressSubject("+8613900000002")})
			require.NoError(t, err)
			require.Equal(t, map[string]bool{store.AddressSubject("13900000001"): true}, got)
			got, err = st.SuppressedAmong(ctx, "push", []string{store.AddressSubject("13900000001")})
			require.NoError(t, err)
			require.Empty(t, got, "an SMS reply unsubscribes from SMS")
			list, err := st.Suppressions(ctx, store.SuppressionQuery{})
			require.NoError(t, err)
			require.Len(t, list, 1)
			require.Equal(t, provider+"_reply", list[0].Source)
			require.Equal(t, "139****0001", list[0].Display)

			resp, err := http.Post(srv.URL+"/sms/replies?token=guess", "application/json", bytes.NewReader([]byte(`[]`)))
			require.NoError(t, err)
			resp.Body.Close()
			require.Equal(t, 403, resp.StatusCode)
		})
	}
}

// TestWeComDelFollowUserSuppresses: a customer deleting their staff member
// stops WeCom marketing to them; adding a staff member again lifts it.
func TestWeComDelFollowUserSuppresses(t *testing.T) {
	e := newCallbackEnv(t)
	ctx := context.Background()
	_, err := e.st.UpsertProfiles(ctx, []store.ProfileUpdate{{ID: "u1", Patch: []byte(`{"wecom_external_userid":"wmEXT9","owner":"zhangwei"}`)}})
	require.NoError(t, err)
	subject := store.AddressSubject("wmEXT9")
	suppressed := func(ch string) bool {
		got, err := e.st.SuppressedAmong(ctx, ch, []string{subject})
		require.NoError(t, err)
		return got[subject]
	}
	code, body, err := e.sender.Send(ctx, fakes.ContactRemovedEvent("ww-corp", "del_external_contact", "zhangwei", "wmEXT9", time.Now()))
	require.NoError(t, err)
	require.Equal(t, 200, code, body)
	require.False(t, suppressed("wecom.customer"), "the staff member removing the customer is not the customer's opt-out")

	code, body, err = e.sender.Send(ctx, fakes.ContactRemovedEvent("ww-corp", "del_follow_user", "zhangwei", "wmEXT9", time.Now().Add(time.Second)))
	require.NoError(t, err)
	require.Equal(t, 200, code, body)
	require.True(t, suppressed("wecom.customer"))
	require.False(t, suppressed("sms"))

	code, body, err = e.sender.Send(ctx, fakes.ContactAddedEvent("ww-corp", "lina", "wmEXT9", "", "", time.Now().Add(2*time.Second)))
	require.NoError(t, err)
	require.Equal(t, 200, code, body)
	require.False(t, suppressed("wecom.customer"), "adding a staff member again opts back in")
}
