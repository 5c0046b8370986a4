package protocol

// MaxIdempotencyKeyLength is the longest idempotency key of a publish, in
// bytes.
const MaxIdempotencyKeyLength = 128

// ValidateIdempotencyKey checks the idempotency key of a publish: empty
// (none), or 1 to MaxIdempotencyKeyLength bytes of printable ASCII (0x21
// to 0x7e: no space, no control character). It returns ErrBadRequest
// otherwise.
func ValidateIdempotencyKey(key string) error {
	if len(key) > MaxIdempotencyKeyLength {
		return ErrBadRequest.WithMessage("idempotency_key longer than %d bytes", MaxIdempotencyKeyLength)
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x21 || key[i] > 0x7e {
			return ErrBadRequest.WithMessage("idempotency_key has a byte outside printable ASCII at %d", i)
		}
	}
	return nil
}
