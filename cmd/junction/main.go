package main

import (
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/spf13/viper"
	_ "github.com/yookoala/gofast"
	_ "golang.org/x/sync/semaphore"
)

func main() {}
