// Used by tests/e2e/test_prepared.py::test_jdbc_prepared_statements.
// PreparedStatements with prepareThreshold=1, so the driver uses named
// server-side statements ("S_1", "S_2", ...). Each thread prepares the four
// queries in a different order, so the same name means a different text on
// each connection. Prints one line per execution for the test to check:
//   T<thread> <i> Q<query> <value>
// then "SERVERPREPARE <thread> <bool>", "TX <thread> ok" and finally "DONE".
// usage: PrepTest URL USER PASSWORD THREADS ITERATIONS USE_TX(0|1)
import java.sql.*;
import java.util.*;
import java.util.concurrent.*;

public class PrepTest {
    static final String[] QUERIES = {
        "select ?::int * 2",
        "select ?::int + 1000",
        "select 'x' || ?::text",
        "select ?::int - 7",
    };

    static String expect(int q, int i, int tid) {
        switch (q) {
            case 0: return String.valueOf(i * 2);
            case 1: return String.valueOf(i + 1000);
            case 2: return "x" + i + "-" + tid;
            default: return String.valueOf(i - 7);
        }
    }

    static String run(PreparedStatement ps, int q, int i, int tid) throws SQLException {
        if (q == 2) ps.setString(1, i + "-" + tid); else ps.setInt(1, i);
        try (ResultSet rs = ps.executeQuery()) {
            if (!rs.next()) throw new SQLException("no row");
            String v = rs.getString(1);
            if (rs.next()) throw new SQLException("more than one row");
            return v;
        }
    }

    static String work(String url, String user, String pw, int tid, int iters, boolean tx)
            throws Exception {
        Properties p = new Properties();
        p.setProperty("user", user);
        p.setProperty("password", pw);
        p.setProperty("prepareThreshold", "1");
        p.setProperty("connectTimeout", "20");
        p.setProperty("socketTimeout", "40");
        StringBuilder sb = new StringBuilder();
        try (Connection c = DriverManager.getConnection(url, p)) {
            PreparedStatement[] ps = new PreparedStatement[4];
            int[] qi = new int[4];
            for (int k = 0; k < 4; k++) {
                qi[k] = (k + tid) % 4;
                ps[k] = c.prepareStatement(QUERIES[qi[k]]);
            }
            for (int i = 0; i < iters; i++) {
                for (int k = 0; k < 4; k++) {
                    sb.append("T").append(tid).append(' ').append(i).append(" Q").append(qi[k])
                      .append(' ').append(run(ps[k], qi[k], i, tid)).append('\n');
                }
            }
            boolean server = ps[0].unwrap(org.postgresql.PGStatement.class).isUseServerPrepare();
            sb.append("SERVERPREPARE ").append(tid).append(' ').append(server).append('\n');
            if (tx) {
                c.setAutoCommit(false);
                for (int i = 0; i < 3; i++)
                    for (int k = 0; k < 4; k++) {
                        String v = run(ps[k], qi[k], 500 + i, tid);
                        if (!v.equals(expect(qi[k], 500 + i, tid)))
                            throw new SQLException("in transaction: got " + v);
                    }
                c.commit();
                c.setAutoCommit(true);
            }
            sb.append("TX ").append(tid).append(" ok\n");
            for (PreparedStatement s : ps) s.close();
        }
        return sb.toString();
    }

    public static void main(String[] a) throws Exception {
        String url = a[0], user = a[1], pw = a[2];
        int threads = Integer.parseInt(a[3]), iters = Integer.parseInt(a[4]);
        boolean tx = a[5].equals("1");
        ExecutorService ex = Executors.newFixedThreadPool(threads);
        List<Future<String>> fs = new ArrayList<>();
        for (int t = 0; t < threads; t++) {
            final int tid = t;
            fs.add(ex.submit(() -> work(url, user, pw, tid, iters, tx)));
        }
        int failed = 0;
        for (Future<String> f : fs) {
            try {
                System.out.print(f.get(50, TimeUnit.SECONDS));
            } catch (ExecutionException e) {
                failed++;
                e.getCause().printStackTrace();
            }
        }
        ex.shutdownNow();
        System.out.println(failed == 0 ? "DONE" : "FAILED " + failed);
        System.out.flush();
        System.exit(failed == 0 ? 0 : 1);
    }
}
