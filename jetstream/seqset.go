package jetstream

import "math/bits"

// seqSet is a set of stream sequences, a bit each from base (a multiple
// of 64) up: a queue's spilled events, which lie close together, so that
// each costs a bit of the stream's range they span. The zero value is
// empty.
type seqSet struct {
	base  uint64
	words []uint64
	n     int
}

func (s *seqSet) add(seq uint64) {
	at := seq &^ 63
	switch {
	case s.n == 0:
		s.base, s.words = at, s.words[:0]
	case at < s.base:
		k := int((s.base - at) / 64)
		s.words = append(make([]uint64, k, k+len(s.words)), s.words...)
		s.base = at
	}
	i := int((at - s.base) / 64)
	for i >= len(s.words) {
		s.words = append(s.words, 0)
	}
	if bit := uint64(1) << (seq & 63); s.words[i]&bit == 0 {
		s.words[i] |= bit
		s.n++
	}
}

// remove takes seq out and reports whether it was in.
func (s *seqSet) remove(seq uint64) bool {
	if s.n == 0 || seq < s.base || seq-s.base >= uint64(len(s.words))*64 {
		return false
	}
	i, bit := int((seq-s.base)/64), uint64(1)<<(seq&63)
	if s.words[i]&bit == 0 {
		return false
	}
	s.words[i] &^= bit
	s.n--
	s.trim()
	return true
}

// removeUpTo takes out every sequence at or below seq.
func (s *seqSet) removeUpTo(seq uint64) {
	for s.n > 0 && s.min() <= seq {
		s.remove(s.min())
	}
}

// trim drops the empty words at either end, so that words[0] holds min
// and the last word max.
func (s *seqSet) trim() {
	if s.n == 0 {
		s.words = s.words[:0]
		return
	}
	lead := 0
	for s.words[lead] == 0 {
		lead++
	}
	s.words, s.base = s.words[lead:], s.base+uint64(lead)*64
	end := len(s.words)
	for s.words[end-1] == 0 {
		end--
	}
	s.words = s.words[:end]
}

// min and max are the lowest and highest sequence in the set; 0 if empty.
func (s *seqSet) min() uint64 {
	if s.n == 0 {
		return 0
	}
	return s.base + uint64(bits.TrailingZeros64(s.words[0]))
}

func (s *seqSet) max() uint64 {
	if s.n == 0 {
		return 0
	}
	last := len(s.words) - 1
	return s.base + uint64(last)*64 + uint64(63-bits.LeadingZeros64(s.words[last]))
}
