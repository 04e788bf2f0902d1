import Testing

@testable import SQL

@Suite("SQLite placeholders")
struct PlaceholderTests {
    @Test(
        "$n becomes ? when the numbers run 1...n, ?n otherwise; quoted text is left alone",
        arguments: [
            ("SELECT $1, $2 FROM t WHERE a = $3", "SELECT ?, ? FROM t WHERE a = ?"),
            ("SELECT '$1', \"$x\", $1", "SELECT '$1', \"$x\", ?"),
            ("SELECT $2, $1", "SELECT ?2, ?1"),
            ("SELECT $1 WHERE a = $1", "SELECT ?1 WHERE a = ?1"),
            ("SELECT $, $1", "SELECT ?, ?1"),
            ("VALUES ($1, $2), ($3, $4)", "VALUES (?, ?), (?, ?)"),
            ("SELECT 'it''s $1', $1 -- é", "SELECT 'it''s $1', ? -- é"),
            ("SELECT 1", "SELECT 1"),
        ])
    func rewrite(_ sql: String, _ expected: String) {
        #expect(SQLiteConnection.rewritePlaceholders(sql) == expected)
    }
}
