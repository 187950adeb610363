package canvases

import (
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// Positions inside scalars. yaml.v3 gives the line and column where a scalar
// starts; expression and template errors come as offsets into the decoded
// string. sourcePositions replays YAML's decoding of the scalar over the raw
// file so that each decoded rune maps back to where it was written, letting a
// type error point at the bad token inside a quoted or block expression.

type srcPos struct{ line, col int }

// scalarPosition maps a rune offset within n.Value to a file position.
func (u *unit) scalarPosition(n *yaml.Node, runeOffset int) (line, col int) {
	if n == nil {
		return 1, 1
	}
	positions := u.sourcePositions(n)
	if positions != nil {
		if runeOffset >= len(positions) {
			if len(positions) == 0 {
				return n.Line, n.Column
			}
			last := positions[len(positions)-1]
			return last.line, last.col + 1
		}
		if runeOffset < 0 {
			runeOffset = 0
		}
		p := positions[runeOffset]
		return p.line, p.col
	}
	// The replay disagreed with yaml.v3; point at the scalar itself.
	return n.Line, n.Column
}

// cursor walks the raw file by rune, tracking line and column.
type cursor struct {
	src       []byte
	i         int
	line, col int
}

func (c *cursor) eof() bool { return c.i >= len(c.src) }
func (c *cursor) peek() rune {
	if c.eof() {
		return -1
	}
	r, _ := utf8.DecodeRune(c.src[c.i:])
	return r
}
func (c *cursor) peekAt(k int) rune {
	j := c.i
	for ; k > 0 && j < len(c.src); k-- {
		_, w := utf8.DecodeRune(c.src[j:])
		j += w
	}
	if j >= len(c.src) {
		return -1
	}
	r, _ := utf8.DecodeRune(c.src[j:])
	return r
}
func (c *cursor) next() rune {
	r, w := utf8.DecodeRune(c.src[c.i:])
	c.i += w
	if r == '\n' {
		c.line++
		c.col = 1
	} else {
		c.col++
	}
	return r
}
func (c *cursor) pos() srcPos { return srcPos{c.line, c.col} }

// seek places a cursor at a 1-based line and rune column.
func seek(src []byte, line, col int) *cursor {
	c := &cursor{src: src, line: 1, col: 1}
	for !c.eof() && c.line < line {
		c.next()
	}
	for !c.eof() && c.col < col && c.peek() != '\n' {
		c.next()
	}
	if c.line != line || c.col != col {
		return nil
	}
	return c
}

// sourcePositions returns the position of each rune of n.Value, or nil when
// the replay does not reproduce the value exactly.
func (u *unit) sourcePositions(n *yaml.Node) []srcPos {
	c := seek(u.src, n.Line, n.Column)
	if c == nil {
		return nil
	}
	want := []rune(n.Value)
	var got []rune
	var at []srcPos
	emit := func(r rune, p srcPos) bool {
		got = append(got, r)
		at = append(at, p)
		return len(got) < len(want)
	}
	if len(want) == 0 {
		return []srcPos{}
	}
	switch n.Style {
	case yaml.LiteralStyle, yaml.FoldedStyle:
		replayBlock(c, n.Style == yaml.FoldedStyle, emit)
	case yaml.SingleQuotedStyle, yaml.DoubleQuotedStyle:
		c.next() // opening quote
		replayFlow(c, n.Style, emit)
	default:
		replayFlow(c, n.Style, emit)
	}
	if len(got) < len(want) || string(got[:len(want)]) != n.Value {
		return nil
	}
	return at[:len(want)]
}

func isBlank(r rune) bool { return r == ' ' || r == '\t' }

// replayFlow decodes a plain or quoted scalar: escapes, and line folding
// (one line break becomes a space, each further empty line a newline).
func replayFlow(c *cursor, style yaml.Style, emit func(rune, srcPos) bool) {
	var pendingSpace []srcPos // blanks seen but not yet known to be inside the line
	flush := func() bool {
		for _, p := range pendingSpace {
			if !emit(' ', p) {
				return false
			}
		}
		pendingSpace = pendingSpace[:0]
		return true
	}
	for !c.eof() {
		r := c.peek()
		switch {
		case style == yaml.SingleQuotedStyle && r == '\'':
			if c.peekAt(1) != '\'' {
				flush() // blanks before the closing quote belong to the value
				return
			}
			if !flush() {
				return
			}
			p := c.pos()
			c.next()
			c.next()
			if !emit('\'', p) {
				return
			}
		case style == yaml.DoubleQuotedStyle && r == '"':
			flush()
			return
		case style == yaml.DoubleQuotedStyle && r == '\\':
			if !flush() {
				return
			}
			p := c.pos()
			c.next()
			e := c.next()
			var out rune
			switch e {
			case '\n':
				for !c.eof() && isBlank(c.peek()) {
					c.next()
				}
				continue
			case 'n':
				out = '\n'
			case 't', '\t':
				out = '\t'
			case 'r':
				out = '\r'
			case '0':
				out = 0
			case 'x', 'u', 'U':
				digits := map[rune]int{'x': 2, 'u': 4, 'U': 8}[e]
				v := 0
				for k := 0; k < digits && !c.eof(); k++ {
					v = v*16 + hexVal(c.next())
				}
				out = rune(v)
			default:
				out = e // \" \\ \/ and the rest stand for themselves
			}
			if !emit(out, p) {
				return
			}
		case r == '\n':
			pendingSpace = pendingSpace[:0] // trailing blanks are dropped
			breakPos := c.pos()
			c.next()
			breaks := 0
			for {
				for !c.eof() && isBlank(c.peek()) {
					c.next()
				}
				if c.peek() == '\n' {
					breaks++
					c.next()
					continue
				}
				break
			}
			if breaks == 0 {
				if !emit(' ', breakPos) {
					return
				}
			}
			for ; breaks > 0; breaks-- {
				if !emit('\n', breakPos) {
					return
				}
			}
		case isBlank(r):
			pendingSpace = append(pendingSpace, c.pos())
			c.next()
		default:
			if !flush() {
				return
			}
			p := c.pos()
			if !emit(c.next(), p) {
				return
			}
		}
	}
}

func hexVal(r rune) int {
	switch {
	case r >= '0' && r <= '9':
		return int(r - '0')
	case r >= 'a' && r <= 'f':
		return int(r-'a') + 10
	case r >= 'A' && r <= 'F':
		return int(r-'A') + 10
	}
	return 0
}

// replayBlock decodes a literal (|) or folded (>) block scalar whose header
// starts at the cursor.
func replayBlock(c *cursor, folded bool, emit func(rune, srcPos) bool) {
	var pendingBreaks []srcPos
	// Clip and keep chomping end the value with line breaks; runes emitted
	// after the value is complete (strip, clip) are ignored.
	defer func() {
		if emit('\n', c.pos()) {
			for _, p := range pendingBreaks {
				if !emit('\n', p) {
					return
				}
			}
		}
	}()
	for !c.eof() && c.peek() != '\n' { // skip the header line (indicators, comment)
		c.next()
	}
	if c.eof() {
		return
	}
	c.next()
	indent := -1
	prevMoreIndented, first := false, true
	for !c.eof() {
		lineStart := c.pos()
		width := 0
		for !c.eof() && c.peek() == ' ' && (indent < 0 || width < indent) {
			c.next()
			width++
		}
		if c.peek() == '\n' || c.eof() { // an empty line
			pendingBreaks = append(pendingBreaks, lineStart)
			if !c.eof() {
				c.next()
			}
			continue
		}
		if indent < 0 {
			indent = width
		} else if width < indent {
			return // the block has ended
		}
		moreIndented := isBlank(c.peek())
		if !first {
			// The break that ended the previous content line, then empty lines.
			switch {
			case folded && !moreIndented && !prevMoreIndented && len(pendingBreaks) == 0:
				if !emit(' ', lineStart) {
					return
				}
			case folded && !moreIndented && !prevMoreIndented:
				for _, p := range pendingBreaks {
					if !emit('\n', p) {
						return
					}
				}
			default:
				if !emit('\n', lineStart) {
					return
				}
				for _, p := range pendingBreaks {
					if !emit('\n', p) {
						return
					}
				}
			}
		} else {
			for _, p := range pendingBreaks {
				if !emit('\n', p) {
					return
				}
			}
		}
		pendingBreaks = pendingBreaks[:0]
		first = false
		prevMoreIndented = moreIndented
		for !c.eof() && c.peek() != '\n' {
			p := c.pos()
			if !emit(c.next(), p) {
				return
			}
		}
		if c.eof() {
			return
		}
		c.next()
	}
}
