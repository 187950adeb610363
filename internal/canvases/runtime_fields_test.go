package canvases

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestUserFieldsOf: an audience scan decodes only the fields a condition
// reads (Condition.UserFields); any other use of user must say so.
func TestUserFieldsOf(t *testing.T) {
	for _, tc := range []struct {
		src    string
		fields []string
		known  bool
	}{
		{`user.city != "" && !("退订" in user.tags) && user.level in ["普通", "银卡"]`, []string{"city", "tags", "level"}, true},
		{`user?.city == "上海" || user["level"] == "金卡"`, []string{"city", "level"}, true},
		{`user.address.city == "北京"`, []string{"address"}, true},
		{`any(user.tags, # == "vip") && user.tags != nil`, []string{"tags"}, true},
		{`true`, nil, true},
		{`user != nil`, nil, false},
		{`len(user) > 2`, nil, false},
		{`user[user.key] == 1`, nil, false},
		{`$env.user.city == "x"`, nil, false},
		{`let user = 1; user == 1`, nil, false},
		{`not valid (`, nil, false},
	} {
		fields, known := userFieldsOf(tc.src)
		require.Equal(t, tc.known, known, tc.src)
		if tc.known {
			require.Equal(t, tc.fields, fields, tc.src)
		}
	}
}
