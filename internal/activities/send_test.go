package activities

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/workflow"

	"github.com/huabu/huabu/internal/channels"
)

// TestSendAttempts: a regular attempt of Send is named by its run, activity
// id and attempt number (a retry is a new attempt); a local one re-run by a
// retried workflow task has the same three, so each run of it must still
// get a name of its own, or it would resend what the dead run left pending.
func TestSendAttempts(t *testing.T) {
	info := activity.Info{WorkflowExecution: workflow.Execution{ID: "wf", RunID: "r1"}, ActivityID: "5", Attempt: 1}
	require.Equal(t, "r1/5/1", sendAttempt(info))
	require.Equal(t, sendAttempt(info), sendAttempt(info), "the same regular attempt, the same name")
	info.Attempt = 2
	require.Equal(t, "r1/5/2", sendAttempt(info))

	info.IsLocalActivity, info.Attempt = true, 1
	first, again := sendAttempt(info), sendAttempt(info)
	require.NotEqual(t, first, again)
	require.Regexp(t, `^r1/5/1/[0-9a-f]{16}$`, first)
}

// TestGroupSlicesOneMessage: a page with one message for everyone (the
// usual broadcast) is batched as slices of its deliveries, exactly as
// grouping by content, sender and key batches it.
func TestGroupSlicesOneMessage(t *testing.T) {
	outs := func(n int, each func(i int, o *outgoing)) []outgoing {
		out := make([]outgoing, n)
		for i := range out {
			out[i] = outgoing{uid: int64(i + 1), delivery: channels.Delivery{Recipient: channels.Recipient{UserID: fmt.Sprint("u", i)}}}
			if each != nil {
				each(i, &out[i])
			}
		}
		return out
	}
	jpush := channels.Spec{Groupable: true, MaxRecipients: 1000}
	wecom := channels.Spec{Groupable: true, SameSender: true, MaxRecipients: 200, MaxMixed: 50}
	for name, c := range map[string]struct {
		spec     channels.Spec
		out      []outgoing
		slices   bool // batched as slices of out
		batchLen []int
	}{
		"one message":            {jpush, outs(1000, nil), true, []int{1000}},
		"one message, two calls": {jpush, outs(1001, nil), true, []int{1000, 1}},
		"one sender":             {wecom, outs(450, func(_ int, o *outgoing) { o.delivery.Recipient.Sender = "s1" }), true, []int{200, 200, 50}},
		"two senders":            {wecom, outs(10, func(i int, o *outgoing) { o.delivery.Recipient.Sender = fmt.Sprint("s", i%2) }), false, []int{5, 5}},
		"rendered apart":         {jpush, outs(3, func(i int, o *outgoing) { o.key = fmt.Sprint("k", i) }), false, []int{3}},
		"provider keys":          {jpush, outs(4, func(i int, o *outgoing) { o.delivery.Key = "cid" }), false, []int{4}},
		"one recipient":          {jpush, outs(1, nil), false, []int{1}},
		"not groupable":          {channels.Spec{MaxRecipients: 2}, outs(5, nil), false, []int{2, 2, 1}},
	} {
		got := group(c.spec, c.out)
		require.Equal(t, groupByKey(c.spec, c.out), got, name)
		var lens []int
		for _, b := range got {
			lens = append(lens, len(b))
		}
		require.Equal(t, c.batchLen, lens, name)
		require.Equal(t, c.slices, &got[0][0] == &c.out[0], name)
	}
}
