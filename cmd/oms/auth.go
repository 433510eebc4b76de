package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/urfave/cli/v2"

	"github.com/oms-project/oms/auth"
	"github.com/oms-project/oms/credentials"
)

// defaultNkey is the admin's seed that `oms serve` generates under the
// default data dir: the CLI on the same machine finds it there.
var defaultNkey = filepath.Join("data", "credentials", string(credentials.UserAdmin)+".nk")

// clientFlags are the flags of every client command.
func clientFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "server", Aliases: []string{"s"}, Value: "nats://127.0.0.1:4222",
			EnvVars: []string{"OMS_SERVER"}, Usage: "NATS URL of a running oms (client commands)"},
		&cli.DurationFlag{Name: "timeout", Value: 10 * time.Second, EnvVars: []string{"OMS_TIMEOUT"}, Usage: "request timeout (client commands)"},
		&cli.StringFlag{Name: "nkey", EnvVars: []string{"OMS_NKEY"},
			Usage: "NATS nkey seed file to connect with (default: " + defaultNkey + ", the admin's, when it exists)"},
		&cli.StringFlag{Name: "creds", EnvVars: []string{"OMS_CREDS"}, Usage: "NATS credentials file (JWT) to connect with, for an external NATS"},
	}
}

// clientAuth is how a client command authenticates to NATS.
func clientAuth(c *cli.Context) ([]nats.Option, error) {
	switch {
	case c.String("creds") != "":
		return []nats.Option{nats.UserCredentials(c.String("creds"))}, nil
	case c.String("nkey") != "":
		opt, err := nats.NkeyOptionFromSeed(c.String("nkey"))
		if err != nil {
			return nil, fmt.Errorf("--nkey: %w", err)
		}
		return []nats.Option{opt}, nil
	}
	if _, err := os.Stat(defaultNkey); err == nil {
		opt, err := nats.NkeyOptionFromSeed(defaultNkey)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", defaultNkey, err)
		}
		return []nats.Option{opt}, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	return nil, nil
}

func tokenCommand() *cli.Command {
	return &cli.Command{
		Name:  "token",
		Usage: "bearer tokens for the HTTP API",
		Subcommands: []*cli.Command{{
			Name:  "issue",
			Usage: "sign a development token with the node's generated secret (<data-dir>/credentials/jwt.secret)",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "sub", Required: true, Usage: "the principal: a customer's ID, or a staff member's"},
				&cli.StringFlag{Name: "role", Value: string(auth.RoleCustomer), Usage: "customer, support, admin or monitor (reads /metrics only)"},
				&cli.DurationFlag{Name: "ttl", Value: 24 * time.Hour, Usage: "how long the token is valid"},
				&cli.StringFlag{Name: "data-dir", Value: "./data", EnvVars: []string{"OMS_DATA_DIR"}, Usage: "the node's data dir"},
				&cli.StringFlag{Name: "credentials-dir", EnvVars: []string{"OMS_CREDENTIALS_DIR"}, Usage: "the node's credentials (default: <data-dir>/credentials)"},
				&cli.StringFlag{Name: "audience", Value: auth.DefaultAudience, Usage: "the token's audience (the node's --jwt-audience)"},
				&cli.StringFlag{Name: "issuer", Usage: "the token's issuer (the node's --jwt-issuer)"},
			},
			Action: func(c *cli.Context) error {
				role, err := auth.ParseRole(c.String("role"))
				if err != nil {
					return fmt.Errorf("--role: %w", err)
				}
				dir := c.String("credentials-dir")
				if dir == "" {
					dir = filepath.Join(c.String("data-dir"), "credentials")
				}
				if _, err := os.Stat(dir); err != nil {
					return fmt.Errorf("credentials %s: %w (start `oms serve` once to create them, or give --data-dir)", dir, err)
				}
				set, err := credentials.Ensure(dir)
				if err != nil {
					return err
				}
				secret, err := set.TokenSecret()
				if err != nil {
					return err
				}
				token, err := auth.Issue(secret, auth.Principal{Subject: c.String("sub"), Role: role}, c.Duration("ttl"),
					c.String("audience"), c.String("issuer"))
				if err != nil {
					return err
				}
				fmt.Println(token)
				return nil
			},
		}},
	}
}
