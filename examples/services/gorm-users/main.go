// Command gorm-users is the users API on GORM. The model maps both columns
// of the rename; each request selects and assigns only the columns the
// planner's flags name (GORM's Select), so no statement touches a column
// that is not there yet or any more.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"

	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/pgplanner/planner/examples/services/users"
	"github.com/pgplanner/planner/flags"
)

// user holds both columns of the rename; only those in a ColumnChoice
// are ever read or written.
type user struct {
	ID           int64  `gorm:"primaryKey"`
	Email        string `gorm:"column:email"`
	EmailAddress string `gorm:"column:email_address"`
}

func (user) TableName() string { return "users" }

// withEmail sets every column that may be written to email; Select picks.
func withEmail(id int64, email string) user {
	return user{ID: id, Email: email, EmailAddress: email}
}

// email is the value of the column read.
func (u user) email(col string) string {
	if col == users.NewCol {
		return u.EmailAddress
	}
	return u.Email
}

type store struct{ db *gorm.DB }

func (s store) Get(ctx context.Context, cols flags.ColumnChoice, id int64) (string, error) {
	var u user
	err := s.db.WithContext(ctx).Select("id", cols.Read).Take(&u, id).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return "", users.ErrNotFound
	}
	return u.email(cols.Read), err
}

func (s store) Create(ctx context.Context, cols flags.ColumnChoice, email string) (int64, error) {
	u := withEmail(0, email)
	err := s.db.WithContext(ctx).Select(cols.Write).Create(&u).Error
	return u.ID, err
}

func (s store) Update(ctx context.Context, cols flags.ColumnChoice, id int64, email string) error {
	res := s.db.WithContext(ctx).Model(&user{ID: id}).Select(cols.Write).Updates(withEmail(id, email))
	if res.Error == nil && res.RowsAffected == 0 {
		return users.ErrNotFound
	}
	return res.Error
}

func open(_ context.Context, url string) (users.Store, func(), error) {
	db, err := gorm.Open(postgres.Open(url), &gorm.Config{Logger: logger.Default.LogMode(logger.Silent)})
	if err != nil {
		return nil, nil, err
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, nil, err
	}
	return store{db: db}, func() { sqlDB.Close() }, nil
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "address to listen on")
	flag.Parse()
	if err := users.Serve("gorm-users", *addr, open); err != nil {
		fmt.Fprintln(os.Stderr, "gorm-users:", err)
		os.Exit(1)
	}
}
