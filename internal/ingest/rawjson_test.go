package ingest

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

// rawJSONCases are bodies whose members encoding/json and the one-pass
// splitter must read alike: names in other cases and escaped, repeated
// members (the last wins), strings holding braces, quotes and escapes,
// nested values, white space everywhere, null and wrong-typed batches.
var rawJSONCases = []string{
	`{"type":"track","userId":"u1","event":"purchase","properties":{"amount":12.5,"tags":["a","b"]},"timestamp":"2026-11-30T10:00:00Z","messageId":"m1"}`,
	` { "TYPE" : "track" , "userid" : "u1" , "Event":"e" , "properties" : { "s" : "}{\"]" } } `,
	`{"\u0074ype":"identify","traits":{"name":"\u674e\u96f7","x":null},"userId":"\u00fc","messageId":"a\"b"}`,
	`{"type":"track","type":"page","userId":1234,"anonymousId":null,"event":["x"],"context":{"library":{"name":"bench","version":"1"}}}`,
	`{"userId":"u\u0000","messageId":"line\nbreak","sentAt":"2026-11-30T10:00:00Z","originalTimestamp":"2026-11-30T09:00:00+08:00"}`,
	`{"ſentAt":"x","\u212aey":1,"MESSAGEID":"k","messageId":"m"}`,
	`{"batch":[{"type":"track","userId":"u1","event":"e"} , {"type":"identify","userId":"u2","traits":{"a":[1,{"b":"]"}]}},1,"s",null,[],{}],"sentAt":"2026-11-30T10:00:00Z","context":{}}`,
	`{"batch":null}`,
	`{"batch":[]}`,
	`{"BATCH":[{"a":1}],"batch":"no"}`,
	`{"batch":"no","Batch":[{"a":1}]}`,
	`{"batch":{"type":"track"}}`,
	`{"batch":[ ],"SentAt":12}`,
	`{}`,
	`{"invalid utf8 \xff":"\xfe","userId":"\xff"}`,
	`[]`, ` null `, `"x"`, `true`, `12`, `[{"batch":[]}]`,
}

func checkRawJSON(t *testing.T, body []byte) {
	if !json.Valid(body) {
		return
	}
	if firstByte(body) != '{' {
		// The API refuses these before splitting (a 400 naming the body),
		// but the splitter must not panic on them either: it answers as
		// Unmarshal does.
		var want batchBody
		_, ok := splitBatchJSON(body)
		require.Equal(t, json.Unmarshal(body, &want) == nil, ok, "batch of %s", body)
		require.Equal(t, message{}, decodeMessageJSON(body), "message of %s", body)
		return
	}
	var want message
	require.NoError(t, json.Unmarshal(body, &want))
	got := decodeMessageJSON(body)
	for _, name := range messageFields {
		require.Equal(t, string(*want.field(name)), string(*got.field(name)), "member %s of %s", name, body)
		wantS, wantOK := "", false
		if raw := *want.field(name); len(raw) > 0 && raw[0] == '"' {
			wantOK = json.Unmarshal(raw, &wantS) == nil
			s, ok := quickString(raw)
			if ok {
				require.True(t, wantOK)
				require.Equal(t, wantS, s, "string %s", raw)
			}
		}
	}
	var wantBatch batchBody
	err := json.Unmarshal(body, &wantBatch)
	gotBatch, ok := splitBatchJSON(body)
	require.Equal(t, err == nil, ok, "batch of %s: %v", body, err)
	if err != nil {
		return
	}
	require.Equal(t, wantBatch.Batch == nil, gotBatch.Batch == nil, "batch of %s", body)
	require.Len(t, gotBatch.Batch, len(wantBatch.Batch))
	for i := range wantBatch.Batch {
		require.True(t, bytes.Equal(wantBatch.Batch[i], gotBatch.Batch[i]), "batch[%d] of %s: %s vs %s", i, body, wantBatch.Batch[i], gotBatch.Batch[i])
	}
	require.Equal(t, string(wantBatch.SentAt), string(gotBatch.SentAt))
}

func TestRawJSONReadsLikeEncodingJSON(t *testing.T) {
	for _, c := range rawJSONCases {
		checkRawJSON(t, []byte(c))
	}
}

// FuzzRawMessageDecoding: for every valid JSON object, the one-pass
// splitter gives each field, the batch's items and every escape-free
// string exactly as encoding/json does.
func FuzzRawMessageDecoding(f *testing.F) {
	for _, c := range rawJSONCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		checkRawJSON(t, body)
	})
}
