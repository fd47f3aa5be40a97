// MyPrepTest: MariaDB Connector/J with server-side prepared statements
// (useServerPrepStmts=true&cachePrepStmts=true) through sluice, several
// threads over few server connections (tests/e2e/test_mysql_prepared.py).
//
// Usage: MyPrepTest <jdbc url> <user> <password> <threads> <iterations>
// Each thread prints "T<tid> <i> <what> <value>" lines the test compares
// with what it expects, then "TX <tid> ok"; the main thread prints DONE.
// The same statement text is bound with an int in even threads and with a
// string in odd ones, so a server's statement meets both types.
import java.sql.*;
import java.util.*;

public class MyPrepTest {
    public static void main(String[] a) throws Exception {
        String url = a[0], user = a[1], pw = a[2];
        int threads = Integer.parseInt(a[3]), iters = Integer.parseInt(a[4]);
        List<Thread> ts = new ArrayList<>();
        List<Throwable> errors = Collections.synchronizedList(new ArrayList<>());
        for (int t = 0; t < threads; t++) {
            final int tid = t;
            Thread th = new Thread(() -> {
                try {
                    run(url, user, pw, tid, iters);
                } catch (Throwable e) {
                    errors.add(e);
                    e.printStackTrace();
                }
            });
            ts.add(th);
            th.start();
        }
        for (Thread th : ts)
            th.join();
        if (!errors.isEmpty())
            System.exit(1);
        System.out.println("DONE");
    }

    static void run(String url, String user, String pw, int tid, int iters) throws SQLException {
        try (Connection c = DriverManager.getConnection(url, user, pw)) {
            PreparedStatement add = c.prepareStatement("SELECT ? + 1000");
            PreparedStatement echo = c.prepareStatement("SELECT CONCAT('v', ?)");
            PreparedStatement pair = c.prepareStatement("SELECT CONCAT(?, '-', ?)");
            for (int i = 0; i < iters; i++) {
                add.setInt(1, i);
                print(tid, i, "add", add);
                if (tid % 2 == 0)
                    echo.setInt(1, i);
                else
                    echo.setString(1, "s" + i);
                print(tid, i, "echo", echo);
                pair.setString(1, "t" + tid);
                pair.setLong(2, (long) i * 3);
                print(tid, i, "pair", pair);
            }
            // A transaction with prepared statements: rows stay on one server
            // until commit; a rollback takes them back.
            c.setAutoCommit(false);
            PreparedStatement ins = c.prepareStatement("INSERT INTO jdbc_rows (tid, n) VALUES (?, ?)");
            for (int i = 0; i < 5; i++) {
                ins.setInt(1, tid);
                ins.setInt(2, i);
                ins.executeUpdate();
            }
            c.commit();
            ins.setInt(1, tid);
            ins.setInt(2, 99);
            ins.executeUpdate();
            c.rollback();
            c.setAutoCommit(true);
            PreparedStatement count = c.prepareStatement("SELECT COUNT(*), SUM(n) FROM jdbc_rows WHERE tid = ?");
            count.setInt(1, tid);
            try (ResultSet rs = count.executeQuery()) {
                rs.next();
                System.out.println("TX " + tid + (rs.getInt(1) == 5 && rs.getInt(2) == 10 ? " ok" : " bad " + rs.getInt(1) + " " + rs.getInt(2)));
            }
            add.close();
            echo.close();
            pair.close();
            ins.close();
            count.close();
        }
    }

    static void print(int tid, int i, String what, PreparedStatement ps) throws SQLException {
        try (ResultSet rs = ps.executeQuery()) {
            rs.next();
            System.out.println("T" + tid + " " + i + " " + what + " " + rs.getString(1));
        }
    }
}
