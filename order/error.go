package order

import (
	"errors"
	"fmt"
)

// Sentinel errors; callers test them with errors.Is.
var (
	ErrNotFound            = errors.New("order not found")
	ErrAlreadyExists       = errors.New("order already exists")
	ErrIllegalTransition   = errors.New("illegal transition")
	ErrIdempotencyConflict = errors.New("id already used with a different payload")
	ErrPaymentMismatch     = errors.New("payment does not match the order")
	ErrInvalid             = errors.New("invalid input")
)

// TransitionError is an illegal transition: Action is not allowed while the
// order is in Status.
type TransitionError struct {
	Action string
	Status Status
}

func (e *TransitionError) Error() string {
	return fmt.Sprintf("cannot %s an order in status %s", e.Action, e.Status)
}

func (e *TransitionError) Is(target error) bool { return target == ErrIllegalTransition }

// ValidationError names the field that is wrong and why.
type ValidationError struct {
	Field   string
	Message string
}

func (e *ValidationError) Error() string { return e.Field + ": " + e.Message }

func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

func invalid(field, format string, args ...any) error {
	return &ValidationError{Field: field, Message: fmt.Sprintf(format, args...)}
}
