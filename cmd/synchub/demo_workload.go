package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

const insertCustomerSQL = `INSERT INTO public.customers
    (id, name, email, tier, balance, lifetime, score, rating, visits, floor, active, code,
     avatar, ref, prefs, raw_prefs, birthday, opens_at, created, updated, grace, tags, lucky)
VALUES ($1, $2, $3, $4, $5::numeric, $6, $7, $8, $9, $10, $11, $12, $13, gen_random_uuid(),
     $14::jsonb, $15::json, $16::date, $17::time, now(), now(), $18::interval, $19, $20)`

var demoNames = []string{"Ada", "Grace", "Linus", "Barbara", "Ken", "Margaret", "Dennis", "Frances", "Edsger", "Radia", "Zoë", "Søren", "李娜", "Олег"}

func insertCustomer(ctx context.Context, tx pgx.Tx, r *rand.Rand, id int64) error {
	name := demoNames[r.IntN(len(demoNames))]
	tiers := []string{"bronze", "silver", "gold"}
	avatar := make([]byte, 16)
	for i := range avatar {
		avatar[i] = byte(r.IntN(256))
	}
	avatar[3] = 0
	_, err := tx.Exec(ctx, insertCustomerSQL,
		id, fmt.Sprintf("%s #%d 🚀", name, id), fmt.Sprintf("%s%d@example.com", strings.ToLower(name), id),
		tiers[r.IntN(3)], fmt.Sprintf("%d.%04d", r.IntN(100000), r.IntN(10000)),
		int64(9_000_000_000_000_000_000)+r.Int64N(200_000_000_000_000_000),
		r.Float64()*100, float32(r.Float64()*5), r.IntN(100), int16(r.IntN(40)), r.IntN(5) > 0,
		fmt.Sprintf("C%03d", id%1000), avatar,
		fmt.Sprintf(`{"theme": "dark", "lang": "en", "n": %d}`, id), `{"b": 1,  "a": [1, 2]}`,
		fmt.Sprintf("19%02d-%02d-%02d", 50+r.IntN(50), 1+r.IntN(12), 1+r.IntN(28)),
		fmt.Sprintf("%02d:%02d:00", 6+r.IntN(4), r.IntN(60)),
		fmt.Sprintf("%d days %d hours", r.IntN(30), r.IntN(24)),
		[]string{"vip", `quote"d`, "a,b"}, []int32{int32(r.IntN(100)), 7})
	if err != nil {
		return fmt.Errorf("insert customer %d: %w", id, err)
	}
	return nil
}

func seedDemo(ctx context.Context, conn *pgx.Conn, customers int) error {
	r := rand.New(rand.NewPCG(1, 2))
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	for i := 1; i <= customers; i++ {
		if err := insertCustomer(ctx, tx, r, int64(i)); err != nil {
			return err
		}
	}
	return tx.Commit(ctx)
}

// demoWorkload changes the sample database at about rate transactions per second until
// ctx ends: new orders, status changes, balance updates, deletes and multi-statement
// transactions.
func demoWorkload(ctx context.Context, dsn string, rate float64, txs *atomic.Int64) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("workload: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var nextCustomer int64
	if err := conn.QueryRow(ctx, `SELECT coalesce(max(id), 0) + 1 FROM public.customers`).Scan(&nextCustomer); err != nil {
		return fmt.Errorf("workload: %w", err)
	}
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			switch n := r.IntN(10); {
			case n < 4:
				_, err := tx.Exec(ctx, `INSERT INTO public.orders (customer_id, total, notes)
					SELECT id, $1::numeric, $2 FROM public.customers ORDER BY random() LIMIT 1`,
					fmt.Sprintf("%d.%02d", r.IntN(500), r.IntN(100)), "order from the demo ✓")
				return err
			case n < 6:
				_, err := tx.Exec(ctx, `UPDATE public.orders SET status = $1
					WHERE id = (SELECT id FROM public.orders ORDER BY random() LIMIT 1)`,
					[]string{"paid", "shipped", "delivered"}[r.IntN(3)])
				return err
			case n < 7:
				_, err := tx.Exec(ctx, `UPDATE public.customers SET balance = balance + $1::numeric,
					visits = visits + 1, updated = now() WHERE id = $2`,
					fmt.Sprintf("%d.%04d", r.IntN(100), r.IntN(10000)), 1+r.Int64N(nextCustomer-1))
				return err
			case n < 8:
				_, err := tx.Exec(ctx, `DELETE FROM public.orders
					WHERE id = (SELECT min(id) FROM public.orders WHERE status = 'delivered')`)
				return err
			case n < 9:
				nextCustomer++
				return insertCustomer(ctx, tx, r, nextCustomer-1)
			default:
				// One source transaction of three statements: an edge shows all or none.
				var id int64
				if err := tx.QueryRow(ctx, `INSERT INTO public.orders (customer_id, total, status)
					VALUES ($1, 10.00, 'paid') RETURNING id`, 1+r.Int64N(nextCustomer-1)).Scan(&id); err != nil {
					return err
				}
				if _, err := tx.Exec(ctx, `UPDATE public.customers SET balance = balance - 10 WHERE id =
					(SELECT customer_id FROM public.orders WHERE id = $1)`, id); err != nil {
					return err
				}
				_, err := tx.Exec(ctx, `UPDATE public.orders SET notes = 'paid from balance' WHERE id = $1`, id)
				return err
			}
		})
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("workload: %w", err)
		}
		txs.Add(1)
	}
}
