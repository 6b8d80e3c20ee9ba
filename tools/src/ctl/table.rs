//! A tiny table formatter: a header row, aligned columns two spaces apart, numbers right-aligned
//! on request, no trailing whitespace.

/// Column alignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// A table of text cells.
#[derive(Debug, Clone)]
pub struct Table {
    headers: Vec<String>,
    align: Vec<Align>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers, all left-aligned.
    pub fn new(headers: &[&str]) -> Table {
        Table {
            headers: headers.iter().map(|h| h.to_string()).collect(),
            align: vec![Align::Left; headers.len()],
            rows: Vec::new(),
        }
    }

    /// Right-aligns the given columns (counters read better that way).
    pub fn right(mut self, cols: &[usize]) -> Table {
        for &c in cols {
            if let Some(a) = self.align.get_mut(c) {
                *a = Align::Right;
            }
        }
        self
    }

    /// Adds a row; missing cells are empty, extra cells are kept (and get no header).
    pub fn row<I, S>(&mut self, cells: I)
    where
        I: IntoIterator<Item = S>,
        S: ToString,
    {
        self.rows
            .push(cells.into_iter().map(|c| c.to_string()).collect());
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table as text, one line per row, each ending in a newline.
    pub fn render(&self) -> String {
        let ncols = self
            .rows
            .iter()
            .map(Vec::len)
            .chain([self.headers.len()])
            .max()
            .unwrap_or(0);
        let mut width = vec![0usize; ncols];
        for r in std::iter::once(&self.headers).chain(&self.rows) {
            for (i, c) in r.iter().enumerate() {
                width[i] = width[i].max(c.chars().count());
            }
        }
        let mut out = String::new();
        for r in std::iter::once(&self.headers).chain(&self.rows) {
            let mut line = String::new();
            for (i, w) in width.iter().enumerate() {
                let cell = r.get(i).map(String::as_str).unwrap_or("");
                let pad = w - cell.chars().count();
                if i > 0 {
                    line.push_str("  ");
                }
                match self.align.get(i).copied().unwrap_or(Align::Left) {
                    Align::Left => {
                        line.push_str(cell);
                        line.extend(std::iter::repeat_n(' ', pad));
                    }
                    Align::Right => {
                        line.extend(std::iter::repeat_n(' ', pad));
                        line.push_str(cell);
                    }
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up_and_lines_have_no_trailing_space() {
        let mut t = Table::new(&["PORT", "NAME", "RX-PKTS"]).right(&[0, 2]);
        t.row(["1", "vxlan0", "12345"]);
        t.row(["12", "n1p1", "7"]);
        assert_eq!(
            t.render(),
            "PORT  NAME    RX-PKTS\n\
             \x20  1  vxlan0    12345\n\
             \x20 12  n1p1          7\n"
        );
    }

    #[test]
    fn short_rows_long_rows_and_empty_cells() {
        let mut t = Table::new(&["A", "B"]);
        t.row(["x"]);
        t.row(["", "y", "extra"]);
        assert_eq!(t.render(), "A  B\nx\n   y  extra\n");
    }

    #[test]
    fn an_empty_table_is_its_header() {
        let t = Table::new(&["NODE", "VTEP"]);
        assert!(t.is_empty());
        assert_eq!(t.render(), "NODE  VTEP\n");
    }

    #[test]
    fn width_counts_characters_not_bytes() {
        let mut t = Table::new(&["K", "V"]);
        t.row(["é", "1"]);
        t.row(["ab", "2"]);
        assert_eq!(t.render(), "K   V\né   1\nab  2\n");
    }
}
