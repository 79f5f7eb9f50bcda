package worker

import "testing"

func TestKeySlot(t *testing.T) {
	// Expected slots are from Redis's CLUSTER KEYSLOT and the cluster spec.
	tests := []struct {
		prefix, key string
		want        uint16
	}{
		{"", "123456789", 12739}, // the spec's CRC16 check value 0x31C3
		{"", "foo", 12182},
		{"", "user:42", 15880},
		{"user:", "42", 15880},
		{"", "{user1000}.following", 3443},
		{"", "{user1000}.followers", 3443},
		{"{user", "1000}.followers", 3443},
		{"", "foo{}{bar}", 8363},    // empty tag: the whole key is hashed
		{"", "foo{{bar}}zap", 4015}, // tag is "{bar"
		{"", "foo{bar}{zap}", 5061}, // first tag only: "bar"
	}
	for _, tt := range tests {
		if got := keySlot(tt.prefix, tt.key); got != tt.want {
			t.Errorf("keySlot(%q, %q) = %d, want %d", tt.prefix, tt.key, got, tt.want)
		}
	}
}
