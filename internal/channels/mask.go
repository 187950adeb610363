package channels

// Mask hides most of an address for people and logs (see mask): 138****0001,
// u***@example.com.
func Mask(addr string) string { return mask(addr) }
