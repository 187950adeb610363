package outbound

// ContactPair is a customer (external userid) of a staff member.
type ContactPair struct {
	Staff          string `json:"staff"`
	ExternalUserID string `json:"external_userid"`
}

// ContactScreen is what the contact book knows about the pairs of a batch.
type ContactScreen struct {
	// Unreachable pairs are no longer contacts (del_external_contact or
	// del_follow_user): WeCom would put them in fail_list anyway.
	Unreachable map[ContactPair]bool
	// Welcome holds unused welcome codes still inside their 20 s window.
	Welcome map[ContactPair]string
}
