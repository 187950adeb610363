package channels

var ParsePhone = func(s string) (national string, mainland, ok bool) {
	p, ok := parsePhone(s)
	return p.national, p.mainland, ok
}
