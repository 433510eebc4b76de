package config

import (
	"strings"
	"testing"
	"time"
)

func TestDefaultIsValid(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestValidateNamesTheSetting(t *testing.T) {
	cases := map[string]func(*Config){
		"nats-listen":         func(c *Config) { c.NatsListen = "4222" },
		"partitions":          func(c *Config) { c.Partitions = 0 },
		"replicas":            func(c *Config) { c.Replicas = 2 },
		"reservation-ttl":     func(c *Config) { c.ReservationTTL = time.Millisecond },
		"sim-payment-success": func(c *Config) { c.Simulator.PaymentSuccessRate = 1.5 },
		"sim-max-delay":       func(c *Config) { c.Simulator.MaxDelay = 0 },
		"data-dir":            func(c *Config) { c.DataDir = "" },
	}
	for name, edit := range cases {
		c := Default()
		edit(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), name+":") {
			t.Errorf("%s: got %v", name, err)
		}
	}
}
