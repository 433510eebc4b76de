package api

import (
	"bytes"
	"encoding"
	"encoding/json"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"

	gojson "github.com/goccy/go-json"
	"github.com/tidwall/gjson"

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
	if err := check(gjson.ParseBytes(data), reflect.TypeOf(v).Elem(), ""); err != nil {
		return err
	}
	if err := c.unmarshal(data, v); err != nil {
		field := "body"
		var te *json.UnmarshalTypeError
		if ok := asTypeError(err, &te); ok && te.Field != "" {
			field = jsonPath(te.Field)
		}
		return &order.ValidationError{Field: field, Message: "invalid JSON: " + errorText(err)}
	}
	return nil
}

// jsonPath is a type error's field path as the client wrote it: the
// decoder names the Go struct a field is embedded in too (NewOrder.items),
// and every JSON name oms uses starts in lower case.
func jsonPath(field string) string {
	parts := strings.Split(field, ".")
	kept := parts[:0]
	for _, p := range parts {
		if p != "" && (p[0] < 'A' || p[0] > 'Z') {
			kept = append(kept, p)
		}
	}
	if len(kept) == 0 {
		return field
	}
	return strings.Join(kept, ".")
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
// required field present. It runs on every request and provider event
// before the decoder, so it reads the JSON in place (gjson: no map or raw
// copy per object, which cost five times the decoding itself) and keeps
// the order the errors are named in: an unknown key first, then the
// fields in their struct's order.
func check(data gjson.Result, t reflect.Type, path string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if decodesItself(t) {
		return nil // a time
	}
	switch t.Kind() {
	case reflect.Struct:
		if data.Type == gjson.Null {
			return nil
		}
		if !data.IsObject() {
			return &order.ValidationError{Field: nonEmpty(path, "body"), Message: "must be an object"}
		}
		fields := fieldsOf(t)
		var small [16]gjson.Result
		values := small[:0]
		if len(fields) > len(small) {
			values = make([]gjson.Result, 0, len(fields))
		}
		values = values[:len(fields)]
		var err error
		data.ForEach(func(key, value gjson.Result) bool {
			i := fieldIndex(fields, key.Str)
			if i < 0 {
				err = &order.ValidationError{Field: join(path, keyName(key.Str)), Message: "is not a field of this request (check its spelling)"}
				return false
			}
			values[i] = value
			return true
		})
		if err != nil {
			return err
		}
		for i, f := range fields {
			if !values[i].Exists() {
				if f.required {
					return &order.ValidationError{Field: join(path, f.name), Message: "is required"}
				}
				continue
			}
			if err := check(values[i], f.typ, join(path, f.name)); err != nil {
				return err
			}
		}
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 || !data.IsArray() {
			return nil // bytes, or not an array: the decoder names the type error
		}
		var err error
		i := 0
		data.ForEach(func(_, item gjson.Result) bool {
			err = check(item, t.Elem(), path+"["+strconv.Itoa(i)+"]")
			i++
			return err == nil
		})
		return err
	}
	return nil
}

var selfDecoding sync.Map // reflect.Type → bool

// decodesItself reports whether t reads its own JSON (a time).
func decodesItself(t reflect.Type) bool {
	if v, ok := selfDecoding.Load(t); ok {
		return v.(bool)
	}
	self := reflect.PointerTo(t).Implements(unmarshaler) || reflect.PointerTo(t).Implements(textUnmarshaler)
	selfDecoding.Store(t, self)
	return self
}

func fieldIndex(fields []field, name string) int {
	for i, f := range fields {
		if f.name == name {
			return i
		}
	}
	return -1
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
