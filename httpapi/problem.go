package httpapi

import (
	"errors"
	"net/http"
	"strings"

	"github.com/danielgtaylor/huma/v2"

	"github.com/oms-project/oms/api"
)

// Problem is an error as the HTTP API answers it: RFC 9457 problem
// details (application/problem+json), with oms's kind, the bad field of a
// 400, and the correlation ID of a 500 as extension members.
type Problem struct {
	Type     string `json:"type,omitempty" doc:"always about:blank: the status says it all"`
	Title    string `json:"title" doc:"the status's text"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty" doc:"what went wrong; for a 400 it starts with the field"`
	Instance string `json:"instance,omitempty"`
	// Kind is the error's class (api.Kind): invalid, not_found, illegal_transition, ...
	Kind api.Kind `json:"kind,omitempty"`
	// Field names the bad field of a 400 (items[0].quantity).
	Field         string `json:"field,omitempty"`
	CorrelationID string `json:"correlationId,omitempty"`
	// Errors are every problem the request's validation found.
	Errors []*huma.ErrorDetail `json:"errors,omitempty"`

	headers http.Header
}

func (p *Problem) Error() string  { return p.Detail }
func (p *Problem) GetStatus() int { return p.Status }
func (p *Problem) GetHeaders() http.Header {
	if p.headers == nil {
		p.headers = http.Header{}
	}
	return p.headers
}

// ContentType makes a problem problem+json.
func (p *Problem) ContentType(ct string) string {
	if ct == "application/json" {
		return "application/problem+json"
	}
	return ct
}

// problemOf is the problem an operation's error answers, per the api error
// table: the same code and kind a micro reply carries.
func problemOf(e *api.Error) *Problem {
	p := &Problem{Title: http.StatusText(e.Code), Status: e.Code, Detail: e.Message, Kind: e.Kind, Field: e.Field,
		CorrelationID: e.CorrelationID}
	switch e.Code {
	case http.StatusUnauthorized:
		p.GetHeaders().Set("WWW-Authenticate", `Bearer realm="oms"`)
	case http.StatusServiceUnavailable:
		p.GetHeaders().Set("Retry-After", "1")
	}
	return p
}

// kindOfStatus classifies what huma itself refuses (a body that does not
// match the schema, one too large, an unknown route).
func kindOfStatus(status int) api.Kind {
	switch {
	case status == http.StatusNotFound:
		return api.KindNotFound
	case status == http.StatusUnauthorized:
		return api.KindUnauthenticated
	case status == http.StatusForbidden:
		return api.KindForbidden
	case status == http.StatusTooManyRequests:
		return api.KindRateLimited
	case status >= 500:
		return api.KindInternal
	}
	return api.KindInvalid
}

// humaError is huma's own error constructor, replaced so that what huma
// refuses is a Problem like every other error: a request that fails its
// schema (huma says 422) is a 400 naming the first bad field, as micro's
// validation does.
func humaError(status int, msg string, errs ...error) huma.StatusError {
	if status == http.StatusUnprocessableEntity {
		status = http.StatusBadRequest
	}
	p := &Problem{Title: http.StatusText(status), Status: status, Detail: msg, Kind: kindOfStatus(status)}
	for _, err := range errs {
		var d huma.ErrorDetailer
		if errors.As(err, &d) {
			detail := d.ErrorDetail()
			p.Errors = append(p.Errors, detail)
			if p.Field == "" && detail.Location != "" {
				p.Field = fieldOf(detail.Location)
				p.Detail = p.Field + ": " + detail.Message
			}
			continue
		}
		p.Errors = append(p.Errors, &huma.ErrorDetail{Message: err.Error()})
	}
	return p
}

// fieldOf turns huma's location of a bad value (body.items[0].quantity,
// query.limit, path.id) into the field's name as micro names it.
func fieldOf(location string) string {
	for _, prefix := range []string{"body.", "query.", "path.", "header."} {
		if rest, ok := strings.CutPrefix(location, prefix); ok {
			return rest
		}
	}
	if location == "body" {
		return "body"
	}
	return location
}

func init() {
	// huma builds its errors through this package-level hook: one per
	// process, and oms serves one HTTP API per process.
	huma.NewError = humaError
}
