module github.com/oms-project/oms/examples/pgbaseline

go 1.26.0

require (
	github.com/jackc/pgx/v5 v5.13.0
	github.com/oms-project/oms v0.0.0
)

require (
	github.com/jackc/pgpassfile v1.0.0 // indirect
	github.com/jackc/pgservicefile v0.0.0-20240606120523-5a60cdf6a761 // indirect
	github.com/jackc/puddle/v2 v2.2.3 // indirect
	golang.org/x/sync v0.25.0 // indirect
	golang.org/x/text v0.44.0 // indirect
)

// The yardstick reports latencies as oms bench does, with its code.
replace github.com/oms-project/oms => ../..
