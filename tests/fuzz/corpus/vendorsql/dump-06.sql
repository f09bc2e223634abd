INSERT INTO public.alert_output(id, dataset, alert_nm, run_id, score, output, details, sent, sent_ts) VALUES ('19', 'public.special', 'hostile', '2024-02-29 23:59:59.123456+00', '-0.000000000000000000000000000001', E'fired:
	- rule ''sql_injection''
	- rule "unicode" é
\\.', '{"by": "🦉", "rules": ["quotes_and_controls", "sql_injection"]}', NULL, NULL);