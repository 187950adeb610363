package channels_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/channels"
)

// Grouped app messages: one content to 1000 staff members per Send (one
// message/send call), through the pacer, token cache and JSON to the fake.
func BenchmarkWeComAppGrouped(b *testing.B) {
	f := newWeComFake(b)
	f.KeepRequests = false
	ch := newChannel(b, "wecom.app", "wecom", wecomCfg(f))
	msg := &canvases.Message{Text: "今日推荐：会员日专属权益已上线"}
	const n = 1000
	ds := make([]channels.Delivery, n)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for k := range ds { // new members each round: the per-member pacer never waits
			a := fmt.Sprintf("staff-%d-%d", i, k)
			ds[k] = channels.Delivery{Recipient: channels.Recipient{UserID: a, Address: a}, Message: msg}
		}
		outs, err := ch.Send(context.Background(), batch(ds))
		if err != nil || outs[n-1].Status != channels.Sent {
			b.Fatalf("send: %v", err)
		}
	}
	b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "recipients/s")
}

// Personalised Aliyun SMS: 100 numbers with their own params per Send (one
// SendBatchSms through the SDK, signed, to the fake).
func BenchmarkAliyunBatchSMS(b *testing.B) {
	f := newAliyunFake(b)
	f.KeepRequests = false
	ch := newChannel(b, "sms", "aliyun", aliyunCfg(f))
	const n = 100
	ds := make([]channels.Delivery, n)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for k := range ds {
			num := i*n + k
			ds[k] = channels.Delivery{
				Recipient: channels.Recipient{UserID: fmt.Sprint(num), Address: fmt.Sprintf("138%08d", num%100000000)},
				Message:   &canvases.Message{Template: "SMS_1234", Params: map[string]string{"name": fmt.Sprintf("客户%d", num)}},
			}
		}
		outs, err := ch.Send(context.Background(), batch(ds))
		if err != nil || outs[n-1].Status != channels.Sent {
			b.Fatalf("send: %v", err)
		}
	}
	b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "numbers/s")
}
