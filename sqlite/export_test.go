package sqlite

// FindQuery exposes the search query builder to the black-box tests, which
// check its query plan.
var FindQuery = findQuery
