-- An enterprise contract, as sales write them: one file per workspace under contracts/, named
-- after the workspace's contract id. The host refuses, at load, any contract whose effective
-- discount on any SKU exceeds 50 % (custom rate and percentage discount together).
return {
  workspace = "example-enterprise",
  starts = "2026-01-01T00:00:00Z",     -- in force from (inclusive)
  ends = "2027-01-01T00:00:00Z",       -- until (exclusive)

  -- Custom per-minute rates by SKU id; other SKUs keep the list price.
  rates = {
    ["x64-4c-8gb"] = money.parse("0.005"),
    ["x64-8c-16gb"] = money.parse("0.010"),
  },

  -- A discount on all usage charges, in percent (text keeps it exact).
  discount_percent = "10",

  -- Committed monthly spend; a month below it gets a true-up line on the invoice.
  monthly_commitment_micros = money.usd(2000),
}
