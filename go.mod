module github.com/marketplace/usersvc

go 1.26.8

require github.com/google/wire v0.7.0
