package api

import (
	"bytes"
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"

	gojson "github.com/goccy/go-json"

	"github.com/oms-project/oms/order"
)

// Decode reads a JSON request or provider event into v strictly: a field v
// does not have, or a required one that is missing, is a validation error
// naming it (items[0].sku). A field is required unless its json tag says
// omitempty or omitzero: the rule the OpenAPI document states too. An empty
// body is an empty request.
func Decode(data []byte, v any) error {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		data = []byte("{}")
	}
	if fast.decode(data, v) == nil {
		return nil
	}
	reflect.ValueOf(v).Elem().SetZero()
	return std.decode(data, v)
}

// codec is a JSON implementation Decode reads with. Every body is read with
// the fast one (goccy/go-json, the one the hot paths use); a body it refuses
// is read again with the standard library, which says what is wrong in the
// words the API documents (its type errors name the field). The fast one
// accepts nothing the standard one would refuse, or reads it differently:
// FuzzFastDecodeAgrees holds it to that.
type codec struct {
	valid     func([]byte) bool
	unmarshal func([]byte, any) error
}

var (
	fast = codec{valid: gojson.Valid, unmarshal: gojson.Unmarshal}
	std  = codec{valid: json.Valid, unmarshal: json.Unmarshal}
)

func (c codec) decode(data []byte, v any) error {
	if !c.valid(data) {
		var probe any
		err := c.unmarshal(data, &probe)
		return &order.ValidationError{Field: "body", Message: "invalid JSON: " + errorText(err)}
	}
	if err := c.check(data, reflect.TypeOf(v).Elem(), ""); err != nil {
		return err
	}
	if err := c.unmarshal(data, v); err != nil {
		field := "body"
		var te *json.UnmarshalTypeError
		if ok := asTypeError(err, &te); ok && te.Field != "" {
			field = te.Field
		}
		return &order.ValidationError{Field: field, Message: "invalid JSON: " + errorText(err)}
	}
	return nil
}

func asTypeError(err error, te **json.UnmarshalTypeError) bool {
	t, ok := err.(*json.UnmarshalTypeError)
	*te = t
	return ok
}

func errorText(err error) string {
	if err == nil {
		return "unexpected end"
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

// field is one JSON field of a struct.
type field struct {
	name     string
	required bool
	typ      reflect.Type
}

var fieldCache sync.Map // reflect.Type → []field

// fieldsOf lists a struct's JSON fields, those of embedded structs inline.
func fieldsOf(t reflect.Type) []field {
	if f, ok := fieldCache.Load(t); ok {
		return f.([]field)
	}
	var out []field
	for i := range t.NumField() {
		sf := t.Field(i)
		tag := sf.Tag.Get("json")
		if tag == "-" || !sf.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if sf.Anonymous && name == "" && sf.Type.Kind() == reflect.Struct {
			out = append(out, fieldsOf(sf.Type)...)
			continue
		}
		if name == "" {
			name = sf.Name
		}
		optional := strings.Contains(opts, "omitempty") || strings.Contains(opts, "omitzero")
		out = append(out, field{name: name, required: !optional, typ: sf.Type})
	}
	fieldCache.Store(t, out)
	return out
}

var (
	unmarshaler     = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// check walks data along type t: every object key must be a field, every
// required field present.
func (c codec) check(data []byte, t reflect.Type, path string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(unmarshaler) || reflect.PointerTo(t).Implements(textUnmarshaler) {
		return nil // it decodes itself (a time)
	}
	switch t.Kind() {
	case reflect.Struct:
		if bytes.Equal(data, []byte("null")) {
			return nil
		}
		var obj map[string]json.RawMessage
		if err := c.unmarshal(data, &obj); err != nil {
			return &order.ValidationError{Field: nonEmpty(path, "body"), Message: "must be an object"}
		}
		fields := fieldsOf(t)
		for key := range obj {
			if !hasField(fields, key) {
				return &order.ValidationError{Field: join(path, keyName(key)), Message: "is not a field of this request (check its spelling)"}
			}
		}
		for _, f := range fields {
			raw, ok := obj[f.name]
			if !ok {
				if f.required {
					return &order.ValidationError{Field: join(path, f.name), Message: "is required"}
				}
				continue
			}
			if err := c.check(raw, f.typ, join(path, f.name)); err != nil {
				return err
			}
		}
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return nil
		}
		var items []json.RawMessage
		if err := c.unmarshal(data, &items); err != nil {
			return nil // not an array: the decoder names the type error
		}
		for i, item := range items {
			if err := c.check(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	}
	return nil
}

func hasField(fields []field, name string) bool {
	for _, f := range fields {
		if f.name == name {
			return true
		}
	}
	return false
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// keyName is how an unknown key is named in an error: as it is when it
// could be a field's name, quoted and cut to 64 bytes otherwise (the key
// is the client's, and may be anything).
func keyName(k string) string {
	if fieldName.MatchString(k) {
		return k
	}
	if len(k) > 64 {
		k = strings.ToValidUTF8(k[:64], "") + "…"
	}
	return strconv.Quote(k)
}

var fieldName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)

func nonEmpty(s, or string) string {
	if s == "" {
		return or
	}
	return s
}
