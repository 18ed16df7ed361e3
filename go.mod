module github.com/phivault/phivault

go 1.26.8
