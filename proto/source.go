package proto

import (
	"bytes"
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Source locates a plan file's fields, so that a message about a value
// (a template's unknown variable) can point at the line and column in the
// file. Fields are named as the request package names them: "body",
// "headers.NAME", "requests[I].path", "requests[I].body",
// "requests[I].headers.NAME" (I from 0).
type Source struct {
	File  string
	lines []string
	nodes map[string]*yaml.Node
}

// newSource indexes a plan file's value nodes; nil when it does not parse.
func newSource(file string, b []byte) *Source {
	var doc yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(b)).Decode(&doc); err != nil {
		return nil
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	s := &Source{File: file, lines: strings.Split(string(b), "\n"), nodes: map[string]*yaml.Node{}}
	pairs := func(n *yaml.Node, fn func(k string, v *yaml.Node)) {
		if n == nil || n.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			fn(n.Content[i].Value, n.Content[i+1])
		}
	}
	headers := func(prefix string, v *yaml.Node) {
		pairs(v, func(k string, hv *yaml.Node) { s.nodes[prefix+"headers."+k] = hv })
	}
	pairs(root, func(k string, v *yaml.Node) {
		switch k {
		case "body":
			s.nodes["body"] = v
		case "headers":
			headers("", v)
		case "requests":
			if v.Kind != yaml.SequenceNode {
				return
			}
			for i, r := range v.Content {
				prefix := fmt.Sprintf("requests[%d].", i)
				pairs(r, func(k string, rv *yaml.Node) {
					switch k {
					case "path", "body":
						s.nodes[prefix+k] = rv
					case "headers":
						headers(prefix, rv)
					}
				})
			}
		}
	})
	return s
}

// Position turns line and col of field's value (both from 1, as a
// template error gives them) into the file's line and column. It is exact
// for plain and quoted one-line values without escapes before the point,
// and for literal blocks (|); ok is false when the field is not in the
// file.
func (s *Source) Position(field string, line, col int) (fline, fcol int, ok bool) {
	if s == nil {
		return 0, 0, false
	}
	n := s.nodes[field]
	if n == nil {
		return 0, 0, false
	}
	switch n.Style {
	case yaml.LiteralStyle, yaml.FoldedStyle:
		// The block's indentation is its first non-blank line's: a
		// later line's extra spaces are content.
		fline = n.Line + line
		indent := 0
		for i := n.Line; i < len(s.lines); i++ {
			if l := s.lines[i]; strings.TrimSpace(l) != "" {
				indent = len(l) - len(strings.TrimLeft(l, " "))
				break
			}
		}
		return fline, indent + col, true
	case yaml.DoubleQuotedStyle, yaml.SingleQuotedStyle:
		if line == 1 {
			return n.Line, n.Column + col, true
		}
	default:
		if line == 1 {
			return n.Line, n.Column + col - 1, true
		}
	}
	// A value folded over several lines: its first line.
	return n.Line, n.Column, true
}
